package engine

// CreateTenant provisions a tenant: its schema, and a role named like the
// org (NOLOGIN; grant it to the tenant's users) that may use the schema
// and read and write the tables and sequences the engine creates in it.
// A tenant whose schema exists is in place, and gets registered. The role
// is created unconditionally: if a role of that name exists, the operation
// fails with 42710 and changes nothing.
type CreateTenant struct {
	Org string
}

var _ Operation = (*CreateTenant)(nil)

func (op *CreateTenant) Kind() string { return "create_tenant" }

func (op *CreateTenant) Target() (model, field string) { return "", "" }

func (op *CreateTenant) Validate(*Options) error { return checkOrg(op.Org) }

func (op *CreateTenant) Plan(s *State) (*Plan, error) {
	if s.SchemaExists {
		return &Plan{AddTenant: true}, nil
	}
	schema, role := ident(s.Schema), ident(op.Org)
	return &Plan{
		Phases: []Phase{{Statements: []string{
			"CREATE SCHEMA " + schema,
			"CREATE ROLE " + role + " NOLOGIN",
			"GRANT USAGE, CREATE ON SCHEMA " + schema + " TO " + role,
			"ALTER DEFAULT PRIVILEGES IN SCHEMA " + schema + " GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO " + role,
			"ALTER DEFAULT PRIVILEGES IN SCHEMA " + schema + " GRANT USAGE, SELECT ON SEQUENCES TO " + role,
		}}},
		AddTenant: true,
	}, nil
}
