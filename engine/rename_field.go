package engine

import "fmt"

// RenameField renames a column of a model's table. If only the new name
// exists the rename is in place. Constraint names made from the old name
// are kept.
type RenameField struct {
	Model, From, To string
}

var _ Operation = (*RenameField)(nil)

func (op *RenameField) Kind() string { return "rename_field" }

func (op *RenameField) Target() (model, field string) { return op.Model, op.From }

func (op *RenameField) Validate(*Options) error {
	if err := CheckModelName(op.Model); err != nil {
		return err
	}
	if err := checkFieldName(op.From); err != nil {
		return err
	}
	if err := checkFieldName(op.To); err != nil {
		return err
	}
	if op.From == op.To {
		return &InvalidSpecError{Field: op.From, Reason: "the new name is the old one"}
	}
	return nil
}

func (op *RenameField) Plan(s *State) (*Plan, error) {
	if err := s.managed(op.Model); err != nil {
		return nil, err
	}
	if s.Table == nil {
		return nil, &UnknownModelError{Org: s.Org, Model: op.Model}
	}
	from, to := s.Table.Column(op.From), s.Table.Column(op.To)
	switch {
	case from != nil && to != nil:
		return nil, &FieldConflictError{Model: op.Model, Field: op.To, Diff: fmt.Sprintf("both %q and %q exist", op.From, op.To)}
	case from == nil && to == nil:
		return nil, &UnknownFieldError{Model: op.Model, Field: op.From}
	}
	model := s.Meta
	if model.Field(op.From) != nil {
		model = copyModel(s.Meta, op.Model)
		model.Field(op.From).Name = op.To
	}
	if from == nil {
		return &Plan{Model: model}, nil
	}
	rename := table{s.Schema, op.Model}.alter("RENAME COLUMN " + ident(op.From) + " TO " + ident(op.To))
	return &Plan{Phases: []Phase{{Statements: []string{rename}}}, Model: model}, nil
}
