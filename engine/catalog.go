package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// catalogVersions are the metadata catalog's schema versions in order;
// version N is catalogVersions[N-1]. Append, never edit.
var catalogVersions = []string{`
CREATE TABLE pgmigrate.tenants (
	org        text PRIMARY KEY,
	schema     text NOT NULL UNIQUE,
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE pgmigrate.models (
	org        text NOT NULL,
	model      text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (org, model)
);
CREATE TABLE pgmigrate.fields (
	org      text NOT NULL,
	model    text NOT NULL,
	position int  NOT NULL,
	name     text NOT NULL,
	spec     jsonb NOT NULL,
	PRIMARY KEY (org, model, name),
	FOREIGN KEY (org, model) REFERENCES pgmigrate.models ON DELETE CASCADE
);
CREATE TABLE pgmigrate.history (
	id          bigserial PRIMARY KEY,
	op_id       uuid NOT NULL UNIQUE,
	org         text NOT NULL,
	model       text,
	field       text,
	operation   text NOT NULL,
	statements  text[] NOT NULL,
	attempts    int NOT NULL,
	duration_ms bigint NOT NULL,
	applied_by  text NOT NULL DEFAULT current_user,
	applied_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ON pgmigrate.history (org, model, id);
`, `
CREATE TABLE pgmigrate.locks (org text PRIMARY KEY);
REVOKE ALL ON SCHEMA pgmigrate FROM PUBLIC;
ALTER TABLE pgmigrate.history ADD COLUMN application text;
`, `
CREATE TABLE pgmigrate.intents (
	op_id       uuid PRIMARY KEY,
	org         text NOT NULL,
	operation   text NOT NULL,
	model       text,
	field       text,
	spec        jsonb NOT NULL,
	plan        jsonb NOT NULL,
	phase       int NOT NULL,
	undo        text[] NOT NULL,
	undoing     boolean NOT NULL DEFAULT false,
	applied_by  text,
	application text,
	started_at  timestamptz NOT NULL,
	updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ON pgmigrate.intents (org, started_at);
`}

// Init creates the metadata catalog (schema pgmigrate) or upgrades it to
// this engine's version. A catalog already current is only read. Creating
// or upgrading it is one transaction that makes schema pgmigrate and table
// pgmigrate.version if they are missing, then locks the table, so that
// engines starting at once serialise on a lock that tenant roles, with no
// privilege on schema pgmigrate, can neither take nor hold; the wait for
// it is bounded by the lock timeout (55P03). An engine that loses the race
// to create the schema or the table (23505, 42P06, 42P07) tries again.
// Apply and Plan call it on first use.
func (e *Engine) Init(ctx context.Context) error {
	var version int
	err := e.poolTx(ctx, readOnly, func(tx pgx.Tx) (err error) {
		version, err = catalogVersion(ctx, tx)
		return err
	})
	if err != nil || version == len(catalogVersions) {
		return err
	}
	for try := 1; ; try++ {
		err = e.poolTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error { return upgradeCatalog(ctx, tx) })
		if try == catalogTries || !slices.Contains(catalogRaces, sqlState(err)) {
			return err
		}
	}
}

// catalogRaces are the SQLSTATEs of CREATE SCHEMA IF NOT EXISTS and CREATE
// TABLE IF NOT EXISTS when another transaction creates the same object at
// the same moment: unique violation (in the system catalog), duplicate
// schema, duplicate table. catalogTries bounds the transactions of Init
// that lose such a race.
var catalogRaces = []string{"23505", "42P06", "42P07"}

const catalogTries = 3

// upgradeCatalog creates or upgrades the metadata catalog in tx, holding
// the lock on pgmigrate.version.
func upgradeCatalog(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS pgmigrate;
CREATE TABLE IF NOT EXISTS pgmigrate.version (version int NOT NULL);
LOCK TABLE pgmigrate.version IN SHARE ROW EXCLUSIVE MODE`)
	if err != nil {
		return err
	}
	current, err := catalogVersion(ctx, tx)
	if err != nil || current == len(catalogVersions) {
		return err
	}
	for v := current; v < len(catalogVersions); v++ {
		if _, err := tx.Exec(ctx, catalogVersions[v]); err != nil {
			return fmt.Errorf("engine: upgrading the metadata catalog to version %d: %w", v+1, err)
		}
	}
	_, err = tx.Exec(ctx, "DELETE FROM pgmigrate.version; INSERT INTO pgmigrate.version VALUES ("+itoa(len(catalogVersions))+")")
	return err
}

// catalogVersion is the version of the metadata catalog, 0 if there is
// none; a version newer than this engine's is an error.
func catalogVersion(ctx context.Context, q querier) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT pg_catalog.to_regclass('pgmigrate.version') IS NOT NULL").Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var version int
	if err := q.QueryRow(ctx, "SELECT COALESCE(max(version), 0) FROM pgmigrate.version").Scan(&version); err != nil {
		return 0, err
	}
	if version > len(catalogVersions) {
		return 0, fmt.Errorf("engine: metadata catalog version %d is newer than this engine's %d", version, len(catalogVersions))
	}
	return version, nil
}

// querier is what reading the catalog needs: a connection or transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// TenantsChannel is the channel on which the engine notifies, at the
// commit of create_tenant and drop_tenant, the org made or dropped (the
// payload): a proxy's registry then reads its registration again.
const TenantsChannel = "pgmigrate"

// Registered returns the schemas of those of orgs (all when orgs is nil)
// that the catalog q reads registers, by org; a database with no catalog
// registers none.
func Registered(ctx context.Context, q querier, orgs []string) (map[string]string, error) {
	sql, args := "SELECT org, schema FROM pgmigrate.tenants", []any{}
	if orgs != nil {
		sql, args = sql+" WHERE org = ANY($1)", []any{orgs}
	}
	rows, err := q.Query(ctx, sql, args...)
	if code := sqlState(err); code == "42P01" || code == "3F000" {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	var org, schema string
	_, err = pgx.ForEachRow(rows, []any{&org, &schema}, func() error {
		out[org] = schema
		return nil
	})
	return out, err
}

// tenantSchema returns the org's schema: its registration in
// pgmigrate.tenants, else unregistered.
func tenantSchema(ctx context.Context, q querier, org, unregistered string) (schema string, registered bool, err error) {
	err = q.QueryRow(ctx, "SELECT schema FROM pgmigrate.tenants WHERE org = $1", org).Scan(&schema)
	if err == pgx.ErrNoRows {
		return unregistered, false, nil
	}
	return schema, err == nil, err
}

// readModel returns the metadata of one model, nil if it has none.
func readModel(ctx context.Context, q querier, org, model string) (*Model, error) {
	var exists bool
	err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pgmigrate.models WHERE org = $1 AND model = $2)", org, model).Scan(&exists)
	if err != nil || !exists {
		return nil, err
	}
	rows, err := q.Query(ctx, "SELECT spec FROM pgmigrate.fields WHERE org = $1 AND model = $2 ORDER BY position", org, model)
	if err != nil {
		return nil, err
	}
	specs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, err
	}
	m := &Model{Name: model}
	for _, s := range specs {
		var f FieldSpec
		if err := json.Unmarshal(s, &f); err != nil {
			return nil, fmt.Errorf("engine: metadata of %s.%s: %w", org, model, err)
		}
		m.Fields = append(m.Fields, f)
	}
	return m, nil
}

// listModels returns the org's models in the metadata, by name.
func listModels(ctx context.Context, q querier, org string) ([]string, error) {
	rows, err := q.Query(ctx, "SELECT model FROM pgmigrate.models WHERE org = $1 ORDER BY model", org)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// writeModel replaces the metadata of m.Name with m.
func writeModel(ctx context.Context, tx pgx.Tx, org string, m *Model) error {
	if err := dropModelMeta(ctx, tx, org, m.Name); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, "INSERT INTO pgmigrate.models (org, model) VALUES ($1, $2)", org, m.Name); err != nil {
		return err
	}
	for i, f := range m.Fields {
		spec, err := json.Marshal(f)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "INSERT INTO pgmigrate.fields (org, model, position, name, spec) VALUES ($1, $2, $3, $4, $5)", org, m.Name, i, f.Name, spec)
		if err != nil {
			return err
		}
	}
	return nil
}

func dropModelMeta(ctx context.Context, tx pgx.Tx, org, model string) error {
	_, err := tx.Exec(ctx, "DELETE FROM pgmigrate.models WHERE org = $1 AND model = $2", org, model)
	return err
}
