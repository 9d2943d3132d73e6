package engine

import "strconv"

// DropTenant drops a tenant: its schema with everything in it, its login
// role and its tenant role, those that exist, and its registration and
// metadata. A role is dropped only if CreateTenant could have taken it as
// it is (see CreateTenant); if either is not, it fails with
// UnsafeRoleError (42501) and nothing is dropped, so it never drops the
// engine's role or one that is not a tenant's (a role that holds
// privileges or owns objects outside the tenant's schema, in this database
// or another, is not). Should PostgreSQL still find a dependency, it
// refuses the drop (2BP01) and nothing is dropped. A tenant with none of these left is unchanged. The engine's
// own schema and PostgreSQL's are never dropped (22023).
type DropTenant struct {
	Org string
}

var _ Operation = (*DropTenant)(nil)

func (op *DropTenant) Kind() string { return "drop_tenant" }

func (op *DropTenant) Target() (model, field string) { return "", "" }

func (op *DropTenant) Validate(*Options) error { return checkOrg(op.Org) }

func (op *DropTenant) Plan(s *State) (*Plan, error) {
	if systemSchema(s.Schema) {
		return nil, &InvalidSpecError{Reason: strconv.Quote(s.Schema) + " is not a tenant's schema"}
	}
	if err := s.checkRoles(true); err != nil {
		return nil, err
	}
	var statements []string
	if s.SchemaExists {
		statements = append(statements, "DROP SCHEMA "+ident(s.Schema)+" CASCADE")
	}
	for _, role := range []*Role{s.Login, s.Role} {
		if role != nil {
			statements = append(statements, "DROP ROLE "+ident(role.Name))
		}
	}
	p := &Plan{DropTenant: true}
	if len(statements) > 0 {
		p.Phases = []Phase{{Statements: statements}}
	}
	return p, nil
}
