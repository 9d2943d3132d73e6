package engine

import (
	"fmt"
	"slices"
)

// AlterField brings an existing column's nullable, default, unique and
// references to what the spec asks, with only the statements needed; a
// column already as asked is in place. The spec is the whole field: what
// it leaves out is switched off (no default, not unique, no reference).
// Type and primary key changes are refused.
//
// Setting NOT NULL on a table that holds rows needs a default (the design's
// rule for NOT NULL); it scans the table under a lock that blocks its
// readers and writers, and fails if a row holds NULL. On a table that holds rows a
// unique constraint is built as an index CONCURRENTLY and then attached,
// and a new foreign key is added NOT VALID, replacing the old one, then
// validated in a transaction of its own. Should a later step fail, the
// committed ones are undone, the old foreign key restored.
//
// A re-run after a run stopped between phases finishes its work: an
// engine-named unique index left invalid is dropped and built again, one
// left valid but unattached is attached, and an engine-named foreign key
// left NOT VALID is validated.
type AlterField struct {
	Model string
	Field FieldSpec
}

var _ Operation = (*AlterField)(nil)

func (op *AlterField) Kind() string { return "alter_field" }

func (op *AlterField) Target() (model, field string) { return op.Model, op.Field.Name }

func (op *AlterField) Validate(opts *Options) error {
	if err := CheckModelName(op.Model); err != nil {
		return err
	}
	return op.Field.Validate(opts.AllowedSchemas)
}

func (op *AlterField) Plan(s *State) (*Plan, error) {
	f := op.Field
	if err := s.managed(op.Model, f); err != nil {
		return nil, err
	}
	if s.Table == nil {
		return nil, &UnknownModelError{Org: s.Org, Model: op.Model}
	}
	c := s.Table.Column(f.Name)
	switch {
	case c == nil:
		return nil, &UnknownFieldError{Model: op.Model, Field: f.Name}
	case c.Type != f.ColumnType():
		return nil, &InvalidSpecError{Field: f.Name, Reason: fmt.Sprintf("type changes are not supported (live %s, asked %s); add a new field", c.Type, f.ColumnType())}
	case c.PrimaryKey != f.PrimaryKey:
		return nil, &InvalidSpecError{Field: f.Name, Reason: fmt.Sprintf(`primary key changes are not supported; the field is "primaryKey": %t`, c.PrimaryKey)}
	}
	if s.HasRows && !c.NotNull && !f.IsNullable() && !f.HasDefault() {
		return nil, &UnsafeChangeError{Model: op.Model, Field: f.Name,
			Reason: "the table holds rows, and NOT NULL without a default is refused on such tables",
			Fix:    `Fill in the NULLs, then alter_field with a default and "nullable": false.`}
	}
	t := table{s.Schema, op.Model}
	var phases []Phase
	var last []string
	if c.NotNull == f.IsNullable() {
		action := "SET NOT NULL"
		if f.IsNullable() {
			action = "DROP NOT NULL"
		}
		last = append(last, t.alterColumn(f.Name, action))
	}
	if !sameDefault(c.Default, f) {
		action := "DROP DEFAULT"
		if f.HasDefault() {
			action = "SET DEFAULT " + defaultSQL(f)
		}
		last = append(last, t.alterColumn(f.Name, action))
	}
	switch {
	case c.Unique != "" && !wantsUnique(f):
		last = append(last, t.dropConstraint(c.Unique))
	case c.Unique == "" && wantsUnique(f) && (s.HasRows || c.UniqueIndex != ""):
		// An index a stopped run left is dropped or attached, rows or not.
		phases = append(phases, t.uniquePhases(f.Name, c.UniqueIndex)...)
	case c.Unique == "" && wantsUnique(f):
		last = append(last, t.addUnique(f.Name))
	}
	if unvalidatedForeignKey(s.Schema, op.Model, c, f) {
		// A run stopped before validating the foreign key: validate it.
		phases = append(phases, t.validatePhase(c.ReferenceName))
	}
	if !sameReference(s.Schema, c, f) {
		switch {
		case f.References != nil && s.HasRows:
			phases = append(phases, replaceForeignKey(t, c, t.foreignKeyPhases(f.Name, f.References))...)
		case f.References != nil:
			if c.Reference != nil {
				last = append(last, t.dropConstraint(c.ReferenceName))
			}
			last = append(last, t.addForeignKey(foreignKeyName(op.Model, f.Name), f.Name, f.References, false))
		default:
			last = append(last, t.dropConstraint(c.ReferenceName))
		}
	}
	if len(last) > 0 {
		phases = append(phases, Phase{Statements: last})
	}
	if len(phases) == 0 {
		return fieldInPlace(s, op.Model, c, f), nil
	}
	return &Plan{Phases: phases, Model: withField(s.Meta, op.Model, f)}, nil
}

// replaceForeignKey makes the foreign key phases drop the column's live
// foreign key first, and restore it on undo.
func replaceForeignKey(t table, c *Column, phases []Phase) []Phase {
	if c.Reference == nil {
		return phases
	}
	first := &phases[0]
	first.Statements = slices.Insert(first.Statements, 0, t.dropConstraint(c.ReferenceName))
	first.Undo = append(first.Undo, t.addForeignKey(c.ReferenceName, c.Name, c.Reference, !c.ReferenceValid))
	return phases
}
