package engine

// DropModel drops a model's table and its metadata; a table that is gone
// already is in place. A table that other tables' foreign keys point to is
// not dropped: PostgreSQL refuses, as the statement does not cascade.
type DropModel struct {
	Model string
}

var _ Operation = (*DropModel)(nil)

func (op *DropModel) Kind() string { return "drop_model" }

func (op *DropModel) Target() (model, field string) { return op.Model, "" }

func (op *DropModel) Validate(*Options) error { return CheckModelName(op.Model) }

func (op *DropModel) Plan(s *State) (*Plan, error) {
	if err := s.managed(op.Model); err != nil {
		return nil, err
	}
	if s.Table == nil {
		return &Plan{DropModel: s.Meta != nil}, nil
	}
	drop := "DROP TABLE " + qualified(s.Schema, op.Model)
	return &Plan{Phases: []Phase{{Statements: []string{drop}}}, DropModel: true}, nil
}
