package engine

import (
	"fmt"
	"slices"
	"strings"
)

// CreateModel creates a model's table, owned by the engine's role, and
// grants the tenant role SELECT, INSERT, UPDATE, DELETE, TRUNCATE and
// REFERENCES on it in the same transaction: the tenant's users may use the
// table at once, and cannot alter or drop it. (The engine creates no
// sequences.) A field named id is the primary key unless another field
// says primaryKey. If the table exists with the same columns the operation
// is in place; with other columns it is a conflict.
type CreateModel struct {
	Model  string
	Fields []FieldSpec
}

var _ Operation = (*CreateModel)(nil)

func (op *CreateModel) Kind() string { return "create_model" }

func (op *CreateModel) Target() (model, field string) { return op.Model, "" }

func (op *CreateModel) Validate(opts *Options) error {
	if err := CheckModelName(op.Model); err != nil {
		return err
	}
	if len(op.Fields) == 0 {
		return &InvalidSpecError{Reason: "a model needs at least one field"}
	}
	seen := make(map[string]bool)
	keys := 0
	for _, f := range op.fields() {
		if err := f.Validate(opts.AllowedSchemas); err != nil {
			return err
		}
		if seen[f.Name] {
			return &InvalidSpecError{Field: f.Name, Reason: "the field is given twice"}
		}
		seen[f.Name] = true
		if f.PrimaryKey {
			keys++
		}
	}
	if keys > 1 {
		return &InvalidSpecError{Reason: "more than one field is the primary key"}
	}
	return nil
}

// fields returns the fields with id made the primary key if no field is.
func (op *CreateModel) fields() []FieldSpec {
	fields := slices.Clone(op.Fields)
	if slices.ContainsFunc(fields, func(f FieldSpec) bool { return f.PrimaryKey }) {
		return fields
	}
	for i := range fields {
		if fields[i].Name == "id" {
			fields[i].PrimaryKey = true
		}
	}
	return fields
}

func (op *CreateModel) Plan(s *State) (*Plan, error) {
	fields := op.fields()
	if err := s.managed(op.Model, fields...); err != nil {
		return nil, err
	}
	if s.Table == nil {
		defs := make([]string, len(fields))
		for i, f := range fields {
			defs[i] = columnDef(s.Schema, f)
		}
		statements := []string{"CREATE TABLE " + qualified(s.Schema, op.Model) + " (" + strings.Join(defs, ", ") + ")"}
		if s.Role != nil {
			statements = append(statements, grantTable(s.Schema, op.Model, s.Role.Name))
		}
		return &Plan{Phases: []Phase{{Statements: statements}}, Model: &Model{Name: op.Model, Fields: fields}}, nil
	}
	if diff := tableDiff(s.Schema, s.Table, fields); len(diff) > 0 {
		return nil, &ModelConflictError{Model: op.Model, Diff: strings.Join(diff, "; ")}
	}
	if s.Meta != nil && len(tableDiff(s.Schema, s.Table, s.Meta.Fields)) == 0 {
		return &Plan{Model: s.Meta}, nil
	}
	return &Plan{Model: &Model{Name: op.Model, Fields: fields}}, nil
}

// tableDiff lists how the live table differs from fields; none means it
// has exactly these columns, each as its field asks.
func tableDiff(schema string, t *Table, fields []FieldSpec) []string {
	var diff []string
	for _, f := range fields {
		c := t.Column(f.Name)
		if c == nil {
			diff = append(diff, fmt.Sprintf("field %q has no column", f.Name))
			continue
		}
		for _, d := range columnDiff(schema, c, f) {
			diff = append(diff, fmt.Sprintf("field %q %s", f.Name, d))
		}
	}
	for _, c := range t.Columns {
		if !slices.ContainsFunc(fields, func(f FieldSpec) bool { return f.Name == c.Name }) {
			diff = append(diff, fmt.Sprintf("column %q is not in the spec", c.Name))
		}
	}
	return diff
}
