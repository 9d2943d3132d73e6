package engine

// DropTenant drops a tenant: its schema with everything in it, then the
// org's role, if there is one, with its privileges in this database. A tenant without a schema is in place, and
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
	statements := []string{"DROP SCHEMA " + ident(s.Schema) + " CASCADE"}
	if s.RoleExists {
		role := ident(op.Org)
		statements = append(statements, "DROP OWNED BY "+role, "DROP ROLE "+role)
	}
	return &Plan{Phases: []Phase{{Statements: statements}}, DropTenant: true}, nil
}
