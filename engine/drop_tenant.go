package engine

// DropTenant drops a tenant: its schema with everything in it, its login
// role and its tenant role, those that exist, and its registration and
// metadata. If a role still holds privileges or owns objects elsewhere
// (another database, a schema other than the tenant's), PostgreSQL refuses
// to drop it (2BP01) and nothing is dropped. A tenant with none of these
// left is unchanged.
type DropTenant struct {
	Org string
}

var _ Operation = (*DropTenant)(nil)

func (op *DropTenant) Kind() string { return "drop_tenant" }

func (op *DropTenant) Target() (model, field string) { return "", "" }

func (op *DropTenant) Validate(*Options) error { return checkOrg(op.Org) }

func (op *DropTenant) Plan(s *State) (*Plan, error) {
	var statements []string
	if s.SchemaExists {
		statements = append(statements, "DROP SCHEMA "+ident(s.Schema)+" CASCADE")
	}
	for _, role := range []string{s.Login, s.Role} {
		if role != "" {
			statements = append(statements, "DROP ROLE "+ident(role))
		}
	}
	p := &Plan{DropTenant: true}
	if len(statements) > 0 {
		p.Phases = []Phase{{Statements: statements}}
	}
	return p, nil
}
