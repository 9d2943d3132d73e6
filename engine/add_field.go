package engine

import "strings"

// AddField adds a column to a model's table. If the column exists as asked
// the operation is in place; if it exists otherwise it is a conflict.
//
// On a table that holds rows, a NOT NULL field without a default is
// refused (the rows would have no value), and so is a unique field with a
// default (the rows would all share it). A unique constraint is then built
// as an index CONCURRENTLY and attached to the table, and a foreign key is
// added NOT VALID and validated in a transaction of its own, so that no
// step blocks writes while it scans the table. Should a later step fail,
// the committed ones are undone: the column is dropped.
//
// A re-run after a run stopped between phases finds the column without
// metadata, as asked but for its unique constraint or foreign key; it
// finishes them as alter_field does (see AlterField) instead of reporting
// a conflict.
type AddField struct {
	Model string
	Field FieldSpec
}

var _ Operation = (*AddField)(nil)

func (op *AddField) Kind() string { return "add_field" }

func (op *AddField) Target() (model, field string) { return op.Model, op.Field.Name }

func (op *AddField) Validate(opts *Options) error {
	if err := CheckModelName(op.Model); err != nil {
		return err
	}
	if err := op.Field.Validate(opts.AllowedSchemas); err != nil {
		return err
	}
	if op.Field.PrimaryKey {
		return &InvalidSpecError{Field: op.Field.Name, Reason: "a model's primary key is set by create_model, it cannot be added"}
	}
	return nil
}

func (op *AddField) Plan(s *State) (*Plan, error) {
	f := op.Field
	if err := s.managed(op.Model, f); err != nil {
		return nil, err
	}
	if s.Table == nil {
		return nil, &UnknownModelError{Org: s.Org, Model: op.Model}
	}
	if c := s.Table.Column(f.Name); c != nil {
		if s.Meta.Field(f.Name) == nil && unfinishedField(s.Schema, c, f) {
			// The column without metadata: a run stopped between phases
			// (the metadata is written in the last). Finish what it
			// left undone as alter_field does, or adopt the column.
			return (&AlterField{Model: op.Model, Field: f}).Plan(s)
		}
		if diff := columnDiff(s.Schema, c, f); len(diff) > 0 {
			return nil, &FieldConflictError{Model: op.Model, Field: f.Name, Diff: strings.Join(diff, "; ")}
		}
		return fieldInPlace(s, op.Model, c, f), nil
	}
	phases, err := op.phases(s)
	if err != nil {
		return nil, err
	}
	return &Plan{Phases: phases, Model: withField(s.Meta, op.Model, f)}, nil
}

func (op *AddField) phases(s *State) ([]Phase, error) {
	f := op.Field
	t := table{s.Schema, op.Model}
	if s.HasRows && !f.IsNullable() && !f.HasDefault() {
		return nil, &UnsafeChangeError{Model: op.Model, Field: f.Name,
			Reason: "the table holds rows, which a NOT NULL field without a default leaves without a value",
			Fix:    `Add a default, or add the field nullable, fill it in, then alter_field with "nullable": false and a default.`}
	}
	if s.HasRows && f.Unique && f.HasDefault() {
		return nil, &UnsafeChangeError{Model: op.Model, Field: f.Name,
			Reason: "the table holds rows, which would all get the default, breaking unique",
			Fix:    `Add the field without a default, fill in distinct values, then alter_field with "unique": true and the default.`}
	}
	if !s.HasRows || (!f.Unique && f.References == nil) {
		return []Phase{{Statements: []string{t.addColumn(f)}}}, nil
	}
	bare := f
	bare.Unique, bare.References = false, nil
	phases := []Phase{{
		Statements: []string{t.addColumn(bare)},
		Undo:       []string{t.alter("DROP COLUMN IF EXISTS " + ident(f.Name))},
	}}
	if f.References != nil {
		phases = append(phases, t.foreignKeyPhases(f.Name, f.References)...)
	}
	if f.Unique {
		phases = append(phases, t.uniquePhases(f.Name, "")...)
	}
	return phases, nil
}
