package engine

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgmigrate/pgmigrate-proxy/internal/pgtest"
)

// Helpers for the tests that run against the real cluster. They read the
// live catalog with their own queries, so a test compares the engine's
// view with PostgreSQL's rather than with itself.

// testTimeout bounds a test's waits, so a hang fails instead of blocking
// the run; it says nothing about how fast anything should be.
const testTimeout = 2 * time.Minute

// testCtx is the test's context, cancelled after testTimeout.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// nullable returns a pointer for FieldSpec.Nullable.
func nullable(b bool) *bool { return &b }

// jsonValue encodes v for FieldSpec.Default.
func jsonValue(t testing.TB, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// invoiceFields is the model most tests start from.
func invoiceFields() []FieldSpec {
	return []FieldSpec{
		{Name: "id", Type: Int, PrimaryKey: true},
		{Name: "name", Type: String},
	}
}

// newInvoiceDB is a fresh database with tenant "acme" holding the model
// "invoice" (invoiceFields).
func newInvoiceDB(t testing.TB, opts Options) *testDB {
	t.Helper()
	db := newTestDB(t, opts, "acme")
	db.apply(t, "acme", &CreateModel{Model: "invoice", Fields: invoiceFields()})
	return db
}

// newEngine returns another engine on the test database, with a pool of
// its own, as a second proxy would have.
func (db *testDB) newEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	return New(newPool(t, cluster.DSN(pgtest.Superuser, db.name), 0), opts)
}

// scalar runs a query that returns one value.
func scalar[T any](t testing.TB, db *testDB, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := db.pool.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// tableExists reports whether schema.table is a table.
func tableExists(t testing.TB, db *testDB, schema, table string) bool {
	t.Helper()
	return scalar[bool](t, db, `SELECT EXISTS (SELECT 1 FROM information_schema.tables
WHERE table_schema = $1 AND table_name = $2 AND table_type = 'BASE TABLE')`, schema, table)
}

// tableCount counts the tables of a schema.
func tableCount(t testing.TB, db *testDB, schema string) int {
	t.Helper()
	return scalar[int](t, db, `SELECT count(*)::int FROM information_schema.tables
WHERE table_schema = $1 AND table_type = 'BASE TABLE'`, schema)
}

// schemaExists reports whether a schema exists.
func schemaExists(t testing.TB, db *testDB, schema string) bool {
	t.Helper()
	return scalar[bool](t, db, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)", schema)
}

// liveColumn is a column as PostgreSQL describes it.
type liveColumn struct {
	Name    string
	Type    string // as format_type prints it
	NotNull bool
	Default string // as pg_get_expr prints it, "" for none
}

// liveColumns lists the columns of schema.table in order.
func liveColumns(t testing.TB, db *testDB, schema, table string) []liveColumn {
	t.Helper()
	rows, err := db.pool.Query(context.Background(), `
SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
       COALESCE(pg_catalog.pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_catalog.pg_attribute a
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`, qualified(schema, table))
	if err != nil {
		t.Fatal(err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowToStructByPos[liveColumn])
	if err != nil {
		t.Fatal(err)
	}
	return cols
}

// columnNames lists the column names of schema.table in order, from
// information_schema.
func columnNames(t testing.TB, db *testDB, schema, table string) []string {
	t.Helper()
	rows, err := db.pool.Query(context.Background(), `SELECT column_name::text FROM information_schema.columns
WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, schema, table)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// findColumn returns the live column called name, or nil.
func findColumn(cols []liveColumn, name string) *liveColumn {
	i := slices.IndexFunc(cols, func(c liveColumn) bool { return c.Name == name })
	if i < 0 {
		return nil
	}
	return &cols[i]
}

// liveConstraint is a single-column constraint from pg_constraint.
type liveConstraint struct {
	Name      string
	Type      string // p, u or f
	Validated bool
	RefTable  string // the referenced table of a foreign key
	RefColumn string
}

// constraintsOn lists the primary key, unique and foreign key constraints
// on one column of schema.table.
func constraintsOn(t testing.TB, db *testDB, schema, table, column string) []liveConstraint {
	t.Helper()
	rows, err := db.pool.Query(context.Background(), `
SELECT con.conname::text, con.contype::text, con.convalidated,
       COALESCE(fc.relname::text, ''), COALESCE(fa.attname::text, '')
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = ANY (con.conkey)
LEFT JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid
LEFT JOIN pg_catalog.pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = con.confkey[1]
WHERE con.conrelid = to_regclass($1) AND a.attname = $2 AND con.contype IN ('p', 'u', 'f')
ORDER BY con.conname`, qualified(schema, table), column)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := pgx.CollectRows(rows, pgx.RowToStructByPos[liveConstraint])
	if err != nil {
		t.Fatal(err)
	}
	return cons
}

// constraintOfType returns the first constraint of type typ, or nil.
func constraintOfType(cons []liveConstraint, typ string) *liveConstraint {
	i := slices.IndexFunc(cons, func(c liveConstraint) bool { return c.Type == typ })
	if i < 0 {
		return nil
	}
	return &cons[i]
}

// liveIndex is an index from pg_index.
type liveIndex struct {
	Name   string
	Unique bool
	Valid  bool
}

// indexesOn lists the indexes of schema.table that cover column.
func indexesOn(t testing.TB, db *testDB, schema, table, column string) []liveIndex {
	t.Helper()
	rows, err := db.pool.Query(context.Background(), `
SELECT i.relname::text, x.indisunique, x.indisvalid
FROM pg_catalog.pg_index x
JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY (x.indkey)
WHERE x.indrelid = to_regclass($1) AND a.attname = $2
ORDER BY i.relname`, qualified(schema, table), column)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := pgx.CollectRows(rows, pgx.RowToStructByPos[liveIndex])
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// describe returns the engine's metadata of a model, failing the test if
// it has none.
func describe(t testing.TB, db *testDB, org, model string) *Model {
	t.Helper()
	m, err := db.engine.Describe(context.Background(), org, model)
	if err != nil {
		t.Fatalf("describe %s: %v", model, err)
	}
	return m
}

// fieldNamesOf lists a model's field names in order.
func fieldNamesOf(m *Model) []string {
	var names []string
	for _, f := range m.Fields {
		names = append(names, f.Name)
	}
	return names
}

// checkAgree checks that the metadata of org's model and its live table
// describe the same columns: names in order, types, nullability, presence
// of a default, primary key, unique and (validated) foreign key.
func checkAgree(t testing.TB, db *testDB, org, schema, model string) *Model {
	t.Helper()
	m := describe(t, db, org, model)
	cols := liveColumns(t, db, schema, model)
	var live []string
	for _, c := range cols {
		live = append(live, c.Name)
	}
	if !slices.Equal(fieldNamesOf(m), live) {
		t.Fatalf("%s: metadata fields %v, live columns %v", model, fieldNamesOf(m), live)
	}
	for i, f := range m.Fields {
		c := cols[i]
		if c.Type != f.ColumnType() {
			t.Errorf("%s.%s: live type %q, metadata type %s (%q)", model, f.Name, c.Type, f.Type, f.ColumnType())
		}
		if c.NotNull == f.IsNullable() {
			t.Errorf("%s.%s: live NOT NULL %v, metadata nullable %v", model, f.Name, c.NotNull, f.IsNullable())
		}
		if (c.Default != "") != f.HasDefault() {
			t.Errorf("%s.%s: live default %q, metadata default %s", model, f.Name, c.Default, f.Default)
		}
		cons := constraintsOn(t, db, schema, model, f.Name)
		if pk := constraintOfType(cons, "p") != nil; pk != f.PrimaryKey {
			t.Errorf("%s.%s: live primary key %v, metadata %v", model, f.Name, pk, f.PrimaryKey)
		}
		if u := constraintOfType(cons, "u") != nil; u != (f.Unique && !f.PrimaryKey) {
			t.Errorf("%s.%s: live unique constraint %v, metadata unique %v", model, f.Name, u, f.Unique)
		}
		fk := constraintOfType(cons, "f")
		switch r := f.References; {
		case r == nil && fk != nil:
			t.Errorf("%s.%s: live foreign key %s, none in the metadata", model, f.Name, fk.Name)
		case r != nil && fk == nil:
			t.Errorf("%s.%s: metadata references %s.%s, no live foreign key", model, f.Name, r.Table, r.Column)
		case r != nil && (fk.RefTable != r.Table || fk.RefColumn != r.Column || !fk.Validated):
			t.Errorf("%s.%s: live foreign key %+v, metadata references %s.%s", model, f.Name, *fk, r.Table, r.Column)
		}
	}
	return m
}

// history returns org's history and checks what holds for every entry:
// ids increasing, the org, statements recorded (none for a change of the
// metadata only), at least one attempt.
func history(t testing.TB, db *testDB, org string) []HistoryEntry {
	t.Helper()
	h, err := db.engine.History(context.Background(), org, "")
	if err != nil {
		t.Fatalf("history: %v", err)
	}
	for i, e := range h {
		if i > 0 && e.ID <= h[i-1].ID {
			t.Errorf("history ids out of order: %d after %d", e.ID, h[i-1].ID)
		}
		if e.Org != org || e.Operation == "" || e.Statements == nil || e.Attempts < 1 || e.AppliedBy == "" {
			t.Errorf("history entry %d incomplete: %+v", i, e)
		}
	}
	return h
}

// historyRows counts org's history rows straight from the catalog table.
func historyRows(t testing.TB, db *testDB, org string) int {
	t.Helper()
	return scalar[int](t, db, "SELECT count(*)::int FROM pgmigrate.history WHERE org = $1", org)
}

// checkLastHistory checks that org's history has n entries, the last one
// being op on model and field, recording exactly the result's statements
// and attempts.
func checkLastHistory(t testing.TB, db *testDB, org string, n int, op Operation, r Result) HistoryEntry {
	t.Helper()
	h := history(t, db, org)
	if len(h) != n {
		t.Fatalf("history has %d entries, want %d: %+v", len(h), n, h)
	}
	last := h[n-1]
	model, field := op.Target()
	if last.Operation != op.Kind() || last.Model != model || last.Field != field {
		t.Errorf("last history entry is %s %s.%s, want %s %s.%s", last.Operation, last.Model, last.Field, op.Kind(), model, field)
	}
	if !slices.Equal(last.Statements, r.Statements) {
		t.Errorf("history statements %q, result statements %q", last.Statements, r.Statements)
	}
	if last.Attempts != r.Attempts {
		t.Errorf("history attempts %d, result attempts %d", last.Attempts, r.Attempts)
	}
	return last
}

// wantApplied checks a result is applied with at least one attempt, and
// its statements (wantStatements).
func wantApplied(t testing.TB, r Result, contains ...string) {
	t.Helper()
	if r.Status != Applied || r.Attempts < 1 {
		t.Fatalf("result %+v, want applied", r)
	}
	wantStatements(t, r.Statements, contains...)
}

// wantStatements checks that each of contains is in one of the statements.
func wantStatements(t testing.TB, statements []string, contains ...string) {
	t.Helper()
	for _, s := range contains {
		if !slices.ContainsFunc(statements, func(st string) bool { return strings.Contains(st, s) }) {
			t.Errorf("no statement contains %q: %q", s, statements)
		}
	}
}

// wantUnchanged applies op again and checks it is unchanged and leaves the
// history as it was.
func wantUnchanged(t testing.TB, db *testDB, org string, op Operation) {
	t.Helper()
	before := historyRows(t, db, org)
	r := db.apply(t, org, op)
	if r.Status != Unchanged {
		t.Errorf("re-applying %s: status %s, want unchanged", op.Kind(), r.Status)
	}
	if after := historyRows(t, db, org); after != before {
		t.Errorf("re-applying %s: history rows %d -> %d", op.Kind(), before, after)
	}
}

// wantErr checks that err is (or wraps) a T with SQLSTATE code.
func wantErr[T error](t testing.TB, err error, code string) T {
	t.Helper()
	var target T
	if !errors.As(err, &target) {
		t.Fatalf("error %v (%T), want %T", err, err, target)
	}
	var s interface{ SQLState() string }
	if !errors.As(err, &s) || s.SQLState() != code {
		t.Fatalf("error %v: SQLSTATE %v, want %s", err, s, code)
	}
	return target
}

// blocker is a transaction on a connection of its own, holding whatever
// locks its statement took until released.
type blocker struct {
	conn *pgx.Conn
	once sync.Once
	err  error
}

// newBlocker opens a connection, begins a transaction and runs sql in it;
// the test's cleanup releases it.
func newBlocker(t testing.TB, db *testDB, sql string) *blocker {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, cluster.DSN(pgtest.Superuser, db.name))
	if err != nil {
		t.Fatal(err)
	}
	b := &blocker{conn: conn}
	t.Cleanup(func() {
		if err := b.release(); err != nil {
			t.Error(err)
		}
	})
	if _, err := conn.Exec(ctx, "BEGIN; "+sql); err != nil {
		t.Fatal(err)
	}
	return b
}

// release ends the blocker's transaction and closes its connection; only
// the first call does anything.
func (b *blocker) release() error {
	b.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := b.conn.Exec(ctx, "ROLLBACK")
		b.err = errors.Join(err, b.conn.Close(ctx))
	})
	return b.err
}

// releaseAfter releases b after d in a goroutine; the returned channel
// yields the release error.
func (b *blocker) releaseAfter(d time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		time.Sleep(d)
		done <- b.release()
	}()
	return done
}

// engineRole is the engine's role of newEngineRoleDB: a login role with
// CREATEROLE that owns the database, not a superuser. Its password is its
// name.
const engineRole = "eng"

// newEngineRoleDB is a fresh database owned by engineRole, as a real
// deployment has it, with an engine on a pool connected as engineRole;
// db.pool stays the superuser's, for the checks.
func newEngineRoleDB(t testing.TB, opts Options) *testDB {
	t.Helper()
	db := &testDB{name: cluster.CreateDatabase(t)}
	db.dropRolesAtEnd(t, engineRole)
	db.exec(t, "CREATE ROLE "+engineRole+" LOGIN CREATEROLE PASSWORD "+quoteLiteral(engineRole)+
		"; ALTER DATABASE "+ident(db.name)+" OWNER TO "+engineRole)
	db.pool = newPool(t, cluster.DSN(pgtest.Superuser, db.name), 0)
	db.engine = New(newPool(t, db.dsn(engineRole, engineRole), 0), opts)
	return db
}

// dsn is the URL of the test database for user with password.
func (db *testDB) dsn(user, password string) string {
	u, err := url.Parse(cluster.DSN(user, db.name))
	if err != nil {
		panic(err)
	}
	u.User = url.UserPassword(user, password)
	return u.String()
}

// connect opens a connection to the test database as user with password,
// closed when the test ends.
func (db *testDB) connect(t testing.TB, user, password string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(testCtx(t), db.dsn(user, password))
	if err != nil {
		t.Fatalf("connecting as %s: %v", user, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// dropRolesAtEnd drops the roles that exist of roles when the test ends,
// before its database goes: what they own there passes to the superuser
// and is dropped, with their privileges.
func (db *testDB) dropRolesAtEnd(t testing.TB, roles ...string) {
	t.Helper()
	t.Cleanup(func() {
		for _, role := range roles {
			r, name := ident(role), quoteLiteral(role)
			err := cluster.Exec(context.Background(), db.name, `DO $$ BEGIN
IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = `+name+`) THEN
	REASSIGN OWNED BY `+r+` TO `+pgtest.Superuser+`;
	DROP OWNED BY `+r+`;
	DROP ROLE `+r+`;
END IF;
END $$`)
			if err != nil {
				t.Error(err)
			}
		}
	})
}
