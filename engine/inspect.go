package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// readState reads what an operation plans from: the tenant's schema and,
// for model operations, the live table and the metadata. It runs in its
// own short transaction so that checking for rows waits no longer than
// the lock timeout behind a long lock holder.
func (e *Engine) readState(ctx context.Context, conn *pgx.Conn, org, model string) (*State, error) {
	s := &State{Org: org}
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := setLocal(ctx, tx, "lock_timeout", e.opts.LockTimeout); err != nil {
			return err
		}
		var err error
		if s.Schema, s.Registered, err = tenantSchema(ctx, tx, org); err != nil {
			return err
		}
		err = tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)", s.Schema).Scan(&s.SchemaExists)
		if err != nil {
			return err
		}
		if model == "" {
			return tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)", org).Scan(&s.RoleExists)
		}
		if s.Table, err = readTable(ctx, tx, s.Schema, model); err != nil {
			return err
		}
		if s.Table != nil {
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

// setLocal runs SET LOCAL name = 'Nms'.
func setLocal(ctx context.Context, tx pgx.Tx, name string, d time.Duration) error {
	_, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL %s = %d", name, d.Milliseconds()))
	return err
}

// readTable reads a live table and its single-column constraints, nil if
// it does not exist. The table is found by to_regclass, an index lookup
// however many tenants hold a table of the same name.
func readTable(ctx context.Context, q querier, schema, name string) (*Table, error) {
	rel := qualified(schema, name)
	rows, err := q.Query(ctx, `
SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
       COALESCE(pg_catalog.pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = to_regclass($1) AND c.relkind IN ('r', 'p')
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`, rel)
	if err != nil {
		return nil, err
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Column, error) {
		var c Column
		return c, r.Scan(&c.Name, &c.Type, &c.NotNull, &c.Default)
	})
	if err != nil || len(cols) == 0 {
		return nil, err
	}
	t := &Table{Name: name, Columns: cols}
	rows, err = q.Query(ctx, `
SELECT con.conname, con.contype, a.attname, con.convalidated,
       COALESCE(fn.nspname, ''), COALESCE(fc.relname, ''), COALESCE(fa.attname, ''), con.confdeltype
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1]
LEFT JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid
LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
LEFT JOIN pg_catalog.pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = con.confkey[1]
WHERE con.conrelid = to_regclass($1) AND con.contype IN ('p', 'u', 'f')
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
	return t, rows.Err()
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
