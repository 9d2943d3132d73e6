package engine

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// schemaChooser is an operation that chooses the schema of a tenant not
// registered yet (create_tenant); for the others it is the schema named
// like the org.
type schemaChooser interface{ unregisteredSchema() string }

// readState reads what an operation plans from: the tenant's schema (and,
// where the plan needs them, its roles) and, for model operations, the live table (for adopt_model, with
// what of it would run with its owner's rights) and the metadata. It
// runs in its own short transaction under the engine's settings, so that
// checking for rows waits no longer than the lock timeout behind a long
// lock holder. Rows are read only from a table the engine's role owns.
func (e *Engine) readState(ctx context.Context, conn *pgx.Conn, org string, op Operation) (*State, error) {
	model, _ := op.Target()
	unregistered := org
	if c, ok := op.(schemaChooser); ok {
		unregistered = c.unregisteredSchema()
	}
	s := &State{Org: org}
	err := e.inTx(ctx, conn, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var err error
		if s.Schema, s.Registered, err = tenantSchema(ctx, tx, org, unregistered); err != nil {
			return err
		}
		if err := readTenant(ctx, tx, s, readsRoles(op)); err != nil || model == "" || !s.SchemaExists {
			return err
		}
		if s.Table, err = readTable(ctx, tx, s.Schema, model); err != nil {
			return err
		}
		if s.Table != nil {
			if err := readUniqueIndexes(ctx, tx, s.Schema, s.Table); err != nil {
				return err
			}
		}
		if _, adopt := op.(*AdoptModel); adopt && s.Table != nil {
			if s.Table.Unsafe, err = unsafeObjects(ctx, tx, s.Schema, model); err != nil {
				return err
			}
		}
		switch op.(type) {
		case *CreateModel, *AddField, *AlterField: // may add references
			if s.Unowned, err = unownedTables(ctx, tx, s.Schema); err != nil {
				return err
			}
		}
		if s.Table != nil && s.Table.Owned {
			err = tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+qualified(s.Schema, model)+")").Scan(&s.HasRows)
			if err != nil {
				return err
			}
		}
		s.Meta, err = readModel(ctx, tx, org, model)
		return err
	})
	return s, err
}

// unownedTables lists the tables of schema that the engine's role does not
// own.
func unownedTables(ctx context.Context, q querier, schema string) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT c.relname::text FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND pg_catalog.pg_get_userbyid(c.relowner) <> current_user
ORDER BY c.relname`, schema)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// readsRoles reports whether op plans from the tenant's roles and their
// privileges: the tenant operations, and the model operations that grant
// the tenant role a table.
func readsRoles(op Operation) bool {
	switch op.(type) {
	case *CreateTenant, *DropTenant, *CreateModel, *AdoptModel:
		return true
	}
	return false
}

// readTenant reads whether the tenant's schema exists and, with roles, its
// tenant and login roles and the tenant role's privileges in the schema
// (none if the role does not exist).
func readTenant(ctx context.Context, q querier, s *State, roles bool) error {
	err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)", s.Schema).Scan(&s.SchemaExists)
	if err != nil || !roles {
		return err
	}
	if err := readRoles(ctx, q, s); err != nil || !s.SchemaExists {
		return err
	}
	g := &s.Grants
	return q.QueryRow(ctx, `
SELECT 'USAGE' = ANY (p.schema), 'CREATE' = ANY (p.schema),
       ARRAY(SELECT a.privilege_type FROM pg_catalog.pg_default_acl d, pg_catalog.aclexplode(d.defaclacl) a
             WHERE d.defaclnamespace = n.oid AND d.defaclobjtype = 'r' AND a.grantee = r.oid
               AND pg_catalog.pg_get_userbyid(d.defaclrole) = current_user) @> $3,
       ARRAY(SELECT a.privilege_type FROM pg_catalog.pg_default_acl d, pg_catalog.aclexplode(d.defaclacl) a
             WHERE d.defaclnamespace = n.oid AND d.defaclobjtype = 'S' AND a.grantee = r.oid
               AND pg_catalog.pg_get_userbyid(d.defaclrole) = current_user) @> $4,
       ARRAY(SELECT c.relname::text FROM pg_catalog.pg_class c
             WHERE c.relnamespace = n.oid AND c.relkind IN ('r', 'p')
               AND pg_catalog.pg_get_userbyid(c.relowner) = current_user
               AND NOT ARRAY(SELECT a.privilege_type FROM pg_catalog.aclexplode(c.relacl) a WHERE a.grantee = r.oid) @> $3
             ORDER BY c.relname)
FROM pg_catalog.pg_namespace n
LEFT JOIN pg_catalog.pg_roles r ON r.rolname = $2
CROSS JOIN LATERAL (SELECT ARRAY(SELECT a.privilege_type FROM pg_catalog.aclexplode(n.nspacl) a WHERE a.grantee = r.oid) AS schema) p
WHERE n.nspname = $1`, s.Schema, s.Org, tablePrivileges, sequencePrivileges).
		Scan(&g.Usage, &g.Create, &g.DefaultTables, &g.DefaultSequences, &g.Ungranted)
}

// readRoles reads the roles named like the org (the tenant role) and like
// its login role, those that exist, with what each owns or holds
// privileges on outside the tenant's schema (pg_shdepend; the temporary
// objects of its sessions are not counted, as they go with the session). An oid below 16384
// (FirstNormalObjectId) is one PostgreSQL made at initdb: a predefined
// role or the bootstrap superuser.
func readRoles(ctx context.Context, q querier, s *State) error {
	rows, err := q.Query(ctx, `
SELECT r.rolname::text, r.rolcanlogin,
       pg_catalog.array_remove(ARRAY[CASE WHEN r.rolsuper THEN 'SUPERUSER' END, CASE WHEN r.rolcreaterole THEN 'CREATEROLE' END,
                                     CASE WHEN r.rolcreatedb THEN 'CREATEDB' END, CASE WHEN r.rolreplication THEN 'REPLICATION' END,
                                     CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' END], NULL),
       r.rolname = current_user, r.oid < 16384,
       ARRAY(SELECT DISTINCT g.rolname::text FROM pg_catalog.pg_auth_members m
             JOIN pg_catalog.pg_roles g ON g.oid = m.roleid
             WHERE m.member = r.oid ORDER BY 1),
       ARRAY(SELECT DISTINCT CASE WHEN d.dbid = db.oid
                                  THEN (SELECT o.type || ' ' || o.identity FROM pg_catalog.pg_identify_object(d.classid, d.objid, d.objsubid) o)
                                  WHEN d.dbid = 0 THEN 'a shared object' ELSE 'objects of another database' END
             FROM pg_catalog.pg_shdepend d,
                  (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()) db
             WHERE d.refclassid = 'pg_catalog.pg_authid'::pg_catalog.regclass AND d.refobjid = r.oid AND d.deptype IN ('o', 'a')
               AND NOT COALESCE(d.dbid = db.oid AND (
                     (pg_catalog.pg_identify_object(d.classid, d.objid, d.objsubid)).schema = pg_catalog.quote_ident($3)
                  OR (pg_catalog.pg_identify_object(d.classid, d.objid, d.objsubid)).schema ~ '^pg_(toast_)?temp_[0-9]+$'
                  OR d.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
                     AND d.objid = (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = $3)
                  OR d.classid = 'pg_catalog.pg_default_acl'::pg_catalog.regclass
                     AND d.objid IN (SELECT a.oid FROM pg_catalog.pg_default_acl a
                                     JOIN pg_catalog.pg_namespace n ON n.oid = a.defaclnamespace WHERE n.nspname = $3)), false)
             ORDER BY 1)
FROM pg_catalog.pg_roles r
WHERE r.rolname IN ($1, $2)`, s.Org, loginName(s.Org), s.Schema)
	if err != nil {
		return err
	}
	roles, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*Role, error) {
		r := &Role{}
		return r, row.Scan(&r.Name, &r.CanLogin, &r.Powers, &r.Engine, &r.Predefined, &r.MemberOf, &r.Holds)
	})
	if err != nil {
		return err
	}
	for _, r := range roles {
		if r.Name == s.Org {
			s.Role = r
		} else {
			s.Login = r
		}
	}
	return nil
}

// unsafeObjects lists what a table has that would run with the rights of
// its owner, or reach a table of another owner (see Table.Unsafe), in a
// stable order.
func unsafeObjects(ctx context.Context, q querier, schema, name string) ([]string, error) {
	rows, err := q.Query(ctx, `
WITH t AS (SELECT c.oid, c.relkind, c.relrowsecurity, c.relforcerowsecurity
           FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)),
unsafe (rank, what) AS (
	SELECT 1, pg_catalog.format('trigger %I', g.tgname) FROM t JOIN pg_catalog.pg_trigger g ON g.tgrelid = t.oid WHERE NOT g.tgisinternal
	UNION ALL SELECT 2, pg_catalog.format('rule %I', r.rulename) FROM t JOIN pg_catalog.pg_rewrite r ON r.ev_class = t.oid
	UNION ALL SELECT 3, 'row-level security' FROM t WHERE t.relrowsecurity OR t.relforcerowsecurity
	UNION ALL SELECT 4, pg_catalog.format('policy %I', p.polname) FROM t JOIN pg_catalog.pg_policy p ON p.polrelid = t.oid
	UNION ALL SELECT 5, pg_catalog.format('check constraint %I', con.conname)
	          FROM t JOIN pg_catalog.pg_constraint con ON con.conrelid = t.oid WHERE con.contype = 'c'
	UNION ALL SELECT 6, pg_catalog.format(CASE WHEN x.indexprs IS NOT NULL THEN 'index %I on an expression' ELSE 'partial index %I' END, i.relname)
	          FROM t JOIN pg_catalog.pg_index x ON x.indrelid = t.oid JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
	          WHERE x.indexprs IS NOT NULL OR x.indpred IS NOT NULL
	UNION ALL SELECT 7, pg_catalog.format('statistics %I', st.stxname) FROM t JOIN pg_catalog.pg_statistic_ext st ON st.stxrelid = t.oid
	UNION ALL SELECT 8, pg_catalog.format('generated column %I', a.attname)
	          FROM t JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid
	          WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> ''
	UNION ALL SELECT 9, 'partitions' FROM t WHERE t.relkind = 'p'
	UNION ALL SELECT 10, pg_catalog.format('parent table %s', h.inhparent::regclass) FROM t JOIN pg_catalog.pg_inherits h ON h.inhrelid = t.oid
	UNION ALL SELECT 11, pg_catalog.format('child table %s', h.inhrelid::regclass) FROM t JOIN pg_catalog.pg_inherits h ON h.inhparent = t.oid
	UNION ALL SELECT 12, pg_catalog.format('foreign key %I to table %s of another owner', con.conname, con.confrelid::regclass)
	          FROM t JOIN pg_catalog.pg_constraint con ON con.conrelid = t.oid JOIN pg_catalog.pg_class o ON o.oid = con.confrelid
	          WHERE con.contype = 'f' AND o.oid <> t.oid AND pg_catalog.pg_get_userbyid(o.relowner) <> current_user
	UNION ALL SELECT 13, pg_catalog.format('foreign key %I from table %s of another owner', con.conname, con.conrelid::regclass)
	          FROM t JOIN pg_catalog.pg_constraint con ON con.confrelid = t.oid JOIN pg_catalog.pg_class o ON o.oid = con.conrelid
	          WHERE con.contype = 'f' AND o.oid <> t.oid AND pg_catalog.pg_get_userbyid(o.relowner) <> current_user
)
SELECT what FROM unsafe ORDER BY rank, what`, qualified(schema, name))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// readTable reads a live table, whether the engine's role owns it, and its
// single-column constraints, nil if it does not exist. The table is found
// by to_regclass, an index lookup however many tenants hold a table of the
// same name.
func readTable(ctx context.Context, q querier, schema, name string) (*Table, error) {
	rel := qualified(schema, name)
	rows, err := q.Query(ctx, `
SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
       COALESCE(pg_catalog.pg_get_expr(d.adbin, d.adrelid), ''),
       pg_catalog.pg_get_userbyid(c.relowner) = current_user
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = pg_catalog.to_regclass($1) AND c.relkind IN ('r', 'p')
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`, rel)
	if err != nil {
		return nil, err
	}
	var owned bool
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Column, error) {
		var c Column
		return c, r.Scan(&c.Name, &c.Type, &c.NotNull, &c.Default, &owned)
	})
	if err != nil || len(cols) == 0 {
		return nil, err
	}
	t := &Table{Name: name, Owned: owned, Columns: cols}
	rows, err = q.Query(ctx, `
SELECT con.conname, con.contype, a.attname, con.convalidated,
       COALESCE(fn.nspname, ''), COALESCE(fc.relname, ''), COALESCE(fa.attname, ''), con.confdeltype
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
LEFT JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid
LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
LEFT JOIN pg_catalog.pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = con.confkey[1]
WHERE con.conrelid = pg_catalog.to_regclass($1) AND con.contype IN ('p', 'u', 'f')
  AND cardinality(con.conkey) = 1
ORDER BY con.conname`, rel)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var conname, column, refSchema, refTable, refColumn string
		var contype, deltype byte
		var valid bool
		if err := rows.Scan(&conname, &contype, &column, &valid, &refSchema, &refTable, &refColumn, &deltype); err != nil {
			return nil, err
		}
		c := t.Column(column)
		switch contype {
		case 'p':
			c.PrimaryKey = true
		case 'u':
			c.Unique = conname
		case 'f':
			c.Reference = &Reference{Schema: refSchema, Table: refTable, Column: refColumn, OnDelete: deleteAction(deltype)}
			c.ReferenceName = conname
			c.ReferenceValid = valid
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return t, nil
}

// readUniqueIndexes sets Column.UniqueIndex for the single-column unique
// indexes of table rel (t) that are named as the engine names a unique
// constraint and that are invalid, or valid but used by no primary key,
// unique or exclusion constraint: what a run stopped between the phases of
// a unique constraint leaves (see verify's indexDrift).
func readUniqueIndexes(ctx context.Context, q querier, schema string, t *Table) error {
	rel := qualified(schema, t.Name)
	rows, err := q.Query(ctx, `
SELECT i.relname::text, a.attname::text, x.indisvalid
FROM pg_catalog.pg_index x
JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
WHERE x.indrelid = pg_catalog.to_regclass($1) AND x.indnatts = 1 AND x.indisunique
  AND x.indexprs IS NULL AND x.indpred IS NULL
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint con
                  WHERE con.conindid = x.indexrelid AND con.conrelid = x.indrelid AND con.contype IN ('p', 'u', 'x'))`, rel)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var index, column string
		var valid bool
		if err := rows.Scan(&index, &column, &valid); err != nil {
			return err
		}
		c := t.Column(column)
		if c == nil || index != uniqueName(t.Name, column) {
			continue
		}
		c.UniqueIndex = UniqueIndexUnattached
		if !valid {
			c.UniqueIndex = UniqueIndexInvalid
		}
	}
	return rows.Err()
}

// deleteAction names a pg_constraint.confdeltype.
func deleteAction(t byte) string {
	switch t {
	case 'c':
		return Cascade
	case 'n':
		return SetNull
	case 'r':
		return Restrict
	case 'd':
		return "SET DEFAULT"
	}
	return "NO ACTION"
}
