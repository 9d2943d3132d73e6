package engine

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Finding kinds reported by Posture.
const (
	// SharedLogin is a login role that is a member of the tenant roles of
	// several tenants, so that its sessions can act for each of them.
	SharedLogin = "login role reaches several tenants"
	// PublicSchemaGrant is a tenant schema on which PUBLIC holds a
	// privilege: every role has it.
	PublicSchemaGrant = "tenant schema granted to PUBLIC"
	// LoginGrant is a login role that holds privileges of its own (or
	// owns objects) in a tenant schema: a session of it that leaves its
	// tenant role, as set_config('role', 'none', false) does, keeps them.
	LoginGrant = "login role holds tenant privileges"
	// TenantCreate is a tenant role that may create objects in its schema
	// where raw DDL is denied.
	TenantCreate = "tenant role may create"
)

// Finding is one weakness of the tenants' separation: Object names the
// role or schema at fault, Detail says what it can reach or do.
type Finding struct {
	Kind, Object, Detail string
}

// postureChecks are the queries of Posture, one row (object, detail) per
// finding of their kind. Tenant roles are the roles named like an org of
// pgmigrate.tenants.
var postureChecks = []struct{ kind, query string }{
	{SharedLogin, `
SELECT l.rolname::text,
       pg_catalog.format('login role %I is a member of the tenant roles of %s, so its sessions can act for each of them',
                         l.rolname, pg_catalog.string_agg(t.org, ', ' ORDER BY t.org))
FROM pg_catalog.pg_roles l
CROSS JOIN pgmigrate.tenants t
JOIN pg_catalog.pg_roles r ON r.rolname = t.org
WHERE l.rolcanlogin AND NOT l.rolsuper AND l.rolname <> current_user
  AND pg_catalog.pg_has_role(l.oid, r.oid, 'MEMBER')
GROUP BY l.rolname HAVING count(*) > 1
ORDER BY l.rolname`},
	{PublicSchemaGrant, `
SELECT n.nspname::text,
       pg_catalog.format('PUBLIC holds %s on tenant schema %I, so every role has it',
                         pg_catalog.string_agg(DISTINCT a.privilege_type, ', '), n.nspname)
FROM pgmigrate.tenants t
JOIN pg_catalog.pg_namespace n ON n.nspname = t.schema
CROSS JOIN LATERAL pg_catalog.aclexplode(n.nspacl) a
WHERE a.grantee = 0
GROUP BY n.nspname
ORDER BY n.nspname`},
	{LoginGrant, `
SELECT l.rolname::text,
       pg_catalog.format('login role %I holds privileges of its own in tenant schema %s: a session of it that leaves its tenant role keeps them',
                         l.rolname, pg_catalog.string_agg(DISTINCT g.nspname, ', '))
FROM (
  SELECT n.nspname, a.grantee
  FROM pgmigrate.tenants t
  JOIN pg_catalog.pg_namespace n ON n.nspname = t.schema
  CROSS JOIN LATERAL pg_catalog.aclexplode(n.nspacl) a
  UNION ALL
  SELECT n.nspname, a.grantee
  FROM pgmigrate.tenants t
  JOIN pg_catalog.pg_namespace n ON n.nspname = t.schema
  JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid
  CROSS JOIN LATERAL pg_catalog.aclexplode(COALESCE(c.relacl, pg_catalog.acldefault('r', c.relowner))) a
) g
JOIN pg_catalog.pg_roles l ON l.oid = g.grantee
WHERE l.rolcanlogin AND NOT l.rolsuper AND l.rolname <> current_user
GROUP BY l.rolname
ORDER BY l.rolname`},
	{TenantCreate, `
SELECT r.rolname::text,
       pg_catalog.format('tenant role %I may create objects in schema %I, where raw DDL is denied', r.rolname, n.nspname)
FROM pgmigrate.tenants t
JOIN pg_catalog.pg_roles r ON r.rolname = t.org
JOIN pg_catalog.pg_namespace n ON n.nspname = t.schema
WHERE pg_catalog.has_schema_privilege(r.oid, n.oid, 'CREATE')
ORDER BY r.rolname`},
}

// Posture checks how well PostgreSQL's privileges keep the registered
// tenants apart: login roles other than superusers and the engine's own
// that are members of more than one tenant role, tenant schemas with a
// privilege granted to PUBLIC, login roles with privileges of their own
// (or objects) in tenant schemas and, with denyCreate (raw DDL denied),
// tenant roles that may create objects in their schema. It returns one
// Finding per problem, by kind and name.
func (e *Engine) Posture(ctx context.Context, denyCreate bool) ([]Finding, error) {
	if err := e.ensureCatalog(ctx); err != nil {
		return nil, err
	}
	var findings []Finding
	err := e.poolTx(ctx, readOnly, func(tx pgx.Tx) error {
		for _, c := range postureChecks {
			if c.kind == TenantCreate && !denyCreate {
				continue
			}
			rows, err := tx.Query(ctx, c.query)
			if err != nil {
				return err
			}
			f := Finding{Kind: c.kind}
			_, err = pgx.ForEachRow(rows, []any{&f.Object, &f.Detail}, func() error {
				findings = append(findings, f)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	return findings, err
}
