package engine

import "slices"

// DropField drops a column of a model's table; a column that is gone
// already is in place. The primary key cannot be dropped. A column that
// other tables' foreign keys point to is not dropped either: PostgreSQL
// refuses, as the statement does not cascade.
type DropField struct {
	Model, Field string
}

var _ Operation = (*DropField)(nil)

func (op *DropField) Kind() string { return "drop_field" }

func (op *DropField) Target() (model, field string) { return op.Model, op.Field }

func (op *DropField) Validate(*Options) error {
	if err := CheckModelName(op.Model); err != nil {
		return err
	}
	return checkFieldName(op.Field)
}

func (op *DropField) Plan(s *State) (*Plan, error) {
	if err := s.managed(op.Model); err != nil {
		return nil, err
	}
	if s.Table == nil {
		return nil, &UnknownModelError{Org: s.Org, Model: op.Model}
	}
	model := s.Meta
	if model.Field(op.Field) != nil {
		model = copyModel(s.Meta, op.Model)
		model.Fields = slices.DeleteFunc(model.Fields, func(f FieldSpec) bool { return f.Name == op.Field })
	}
	c := s.Table.Column(op.Field)
	switch {
	case c == nil:
		return &Plan{Model: model}, nil
	case c.PrimaryKey:
		return nil, &InvalidSpecError{Field: op.Field, Reason: "the primary key cannot be dropped"}
	}
	drop := table{s.Schema, op.Model}.alter("DROP COLUMN " + ident(op.Field))
	return &Plan{Phases: []Phase{{Statements: []string{drop}}}, Model: model}, nil
}
