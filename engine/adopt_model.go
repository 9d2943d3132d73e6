package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// AdoptModel makes a table of the tenant's schema that the engine did not
// create a managed model: the engine's role takes it over (ALTER TABLE ...
// OWNER TO CURRENT_USER, which PostgreSQL refuses with 42501 unless the
// role is a member of the table's owner, or a superuser), the tenant role
// gets the privileges create_model gives, and the metadata describes the
// table's columns as they are. Every column must be one a field can
// describe: a field type's column type, its primary key, unique and
// foreign key single-column, a default that is a constant of the column
// type. Any other gives UnsupportedColumnError (0A000) and nothing
// changes. A table the engine owns and the role may use, whose metadata
// matches it, is unchanged.
//
// Whatever runs with the rights of a table's owner, when it is written or
// read, analysed or vacuumed, would run with the engine's once it owns the
// table, and may call functions the tenant can replace at any time. So a
// table that has any of it is refused with UnsupportedTableError (0A000),
// before anything changes: user triggers, rules, row-level security
// (enabled or forced) or policies, check constraints, indexes on
// expressions or partial ones, extended statistics, generated columns,
// partitions, a parent or child table, a foreign key to a table the
// engine's role does not own or from one.
type AdoptModel struct {
	Model string
}

var _ Operation = (*AdoptModel)(nil)

func (op *AdoptModel) Kind() string { return "adopt_model" }

func (op *AdoptModel) Target() (model, field string) { return op.Model, "" }

func (op *AdoptModel) Validate(*Options) error { return CheckModelName(op.Model) }

func (op *AdoptModel) Plan(s *State) (*Plan, error) {
	if s.Table == nil {
		return nil, &UnknownModelError{Org: s.Org, Model: op.Model}
	}
	if len(s.Table.Unsafe) > 0 {
		return nil, &UnsupportedTableError{Model: op.Model, What: s.Table.Unsafe}
	}
	fields := make([]FieldSpec, len(s.Table.Columns))
	for i, c := range s.Table.Columns {
		f, err := importField(s.Schema, c)
		if err != nil {
			return nil, &UnsupportedColumnError{Model: op.Model, Column: c.Name, Type: c.Type, Reason: err.Error()}
		}
		fields[i] = f
	}
	var statements []string
	if !s.Table.Owned {
		statements = append(statements, table{s.Schema, op.Model}.alter("OWNER TO CURRENT_USER"))
	}
	if s.Role != nil && (!s.Table.Owned || slices.Contains(s.Grants.Ungranted, op.Model)) {
		statements = append(statements, grantTable(s.Schema, op.Model, s.Role.Name))
	}
	p := &Plan{Model: &Model{Name: op.Model, Fields: fields}}
	if s.Meta != nil && len(tableDiff(s.Schema, s.Table, s.Meta.Fields)) == 0 {
		p.Model = s.Meta
	}
	if len(statements) > 0 {
		p.Phases = []Phase{{Statements: statements}}
	}
	return p, nil
}

var _ rechecker = (*AdoptModel)(nil)

// recheck reads again, once ALTER TABLE ... OWNER has locked the table,
// what the table has that would run with its owner's rights: a tenant
// that held a lock on it could have added a trigger while the engine
// waited for its own.
func (op *AdoptModel) recheck(ctx context.Context, q querier, s *State) error {
	unsafe, err := unsafeObjects(ctx, q, s.Schema, op.Model)
	if err == nil && len(unsafe) > 0 {
		err = &UnsupportedTableError{Model: op.Model, What: unsafe}
	}
	return err
}

// fieldTypes are the field types by column type, as format_type prints it;
// character varying(n) is a String of maxLength n.
var fieldTypes = map[string]Type{
	"integer":                  Int,
	"double precision":         Float,
	"boolean":                  Boolean,
	"timestamp with time zone": DateTime,
	"text":                     Text,
	"jsonb":                    Json,
}

// importField describes a live column of a table in schema as a field, or
// says why no field can.
func importField(schema string, c Column) (FieldSpec, error) {
	f := FieldSpec{Name: c.Name, Type: fieldTypes[c.Type], PrimaryKey: c.PrimaryKey, Unique: c.Unique != ""}
	if err := checkName("field", c.Name); err != nil {
		return f, err
	}
	if n, ok := strings.CutPrefix(c.Type, "character varying("); ok {
		length, err := strconv.Atoi(strings.TrimSuffix(n, ")"))
		if err != nil {
			return f, fmt.Errorf("no field type has this column type")
		}
		f.Type, f.MaxLength = String, length
	}
	if f.Type == "" {
		return f, fmt.Errorf("no field type has this column type")
	}
	if c.NotNull && !c.PrimaryKey {
		f.Nullable = new(false)
	}
	if c.Reference != nil {
		r := *c.Reference
		if r.Schema == schema {
			r.Schema = ""
		}
		if r.OnDelete != Cascade && r.OnDelete != SetNull && r.OnDelete != Restrict {
			return f, fmt.Errorf("its foreign key is ON DELETE %s, which a field cannot say", r.OnDelete)
		}
		f.References = &r
	}
	if c.Default != "" {
		value, ok := literalValue(c.Default)
		if !ok {
			return f, fmt.Errorf("its default %s is not a constant", c.Default)
		}
		var err error
		if f.Default, err = defaultJSON(f.Type, value); err != nil {
			return f, fmt.Errorf("its default %s: %w", c.Default, err)
		}
	}
	if diff := columnDiff(schema, &c, f); len(diff) > 0 {
		return f, errors.New(strings.Join(diff, "; "))
	}
	return f, nil
}

// defaultJSON is the JSON of a FieldSpec default of type t whose value
// PostgreSQL prints as value.
func defaultJSON(t Type, value string) (json.RawMessage, error) {
	switch t {
	case Int:
		if _, err := strconv.ParseInt(value, 10, 32); err != nil {
			return nil, err
		}
		return json.RawMessage(value), nil
	case Float:
		x, err := strconv.ParseFloat(value, 64)
		if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
			return nil, fmt.Errorf("%q is not a finite number", value)
		}
		return json.Marshal(x)
	case Boolean:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return nil, err
		}
		return json.Marshal(b)
	case DateTime:
		ts, ok := parseTimestamp(value)
		if !ok {
			return nil, fmt.Errorf("%q is not a timestamp", value)
		}
		return json.Marshal(ts.Format(time.RFC3339Nano))
	case Json:
		if !json.Valid([]byte(value)) {
			return nil, fmt.Errorf("not JSON")
		}
		return json.RawMessage(value), nil
	}
	return json.Marshal(value)
}
