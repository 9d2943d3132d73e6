package engine

// DropTenant drops a tenant: its schema with everything in it, then the
// org's role with its privileges in this database (the role must exist,
// as create_tenant makes it). A tenant without a schema is in place, and
// gets unregistered.
type DropTenant struct {
	Org string
}

var _ Operation = (*DropTenant)(nil)

func (op *DropTenant) Kind() string { return "drop_tenant" }

func (op *DropTenant) Target() (model, field string) { return "", "" }

func (op *DropTenant) Validate(*Options) error { return checkOrg(op.Org) }

func (op *DropTenant) Plan(s *State) (*Plan, error) {
	if !s.SchemaExists {
		return &Plan{DropTenant: true}, nil
	}
	role := ident(op.Org)
	return &Plan{
		Phases: []Phase{{Statements: []string{
			"DROP SCHEMA " + ident(s.Schema) + " CASCADE",
			"DROP OWNED BY " + role,
			"DROP ROLE IF EXISTS " + role,
		}}},
		DropTenant: true,
	}, nil
}
