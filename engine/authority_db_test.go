package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgmigrate/pgmigrate-proxy/internal/pgtest"
)

// Tests of tenant authority: the engine running as a role that is not a
// superuser, the privileges tenant roles get and lack, tables the engine
// does not own, the tenant's lock, the pool's limit, who applied a change
// and the posture check.

// wantPrivileges checks that role holds every one of tablePrivileges on
// each of tables (schema-qualified).
func wantPrivileges(t testing.TB, db *testDB, role string, tables ...string) {
	t.Helper()
	for _, table := range tables {
		for _, p := range tablePrivileges {
			if !scalar[bool](t, db, "SELECT pg_catalog.has_table_privilege($1, $2, $3)", role, table, p) {
				t.Errorf("role %s lacks %s on %s", role, p, table)
			}
		}
	}
}

// tableOwner is the owner of a (schema-qualified) table.
func tableOwner(t testing.TB, db *testDB, table string) string {
	t.Helper()
	return scalar[string](t, db, "SELECT relowner::regrole::text FROM pg_catalog.pg_class WHERE oid = $1::regclass", table)
}

// execAs runs sql on the test database as the superuser after SET ROLE
// role, and returns PostgreSQL's error.
func (db *testDB) execAs(t testing.TB, role, sql string) error {
	t.Helper()
	return cluster.Exec(testCtx(t), db.name, "SET ROLE "+ident(role)+"; "+sql)
}

func TestEngineRoleRunsTenant(t *testing.T) {
	var logs syncBuffer
	opts, rec := traced(t, testOptions())
	opts.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	db := newEngineRoleDB(t, opts)
	db.dropRolesAtEnd(t, "acme", "acme.login")
	ctx := testCtx(t)

	create := &CreateTenant{Org: "acme", Login: true}
	r := db.apply(t, "acme", create)
	wantApplied(t, r, "CREATE SCHEMA", `CREATE ROLE "acme" NOLOGIN`, `GRANT USAGE, CREATE ON SCHEMA "acme" TO "acme"`,
		"ALTER DEFAULT PRIVILEGES", `CREATE ROLE "acme.login" LOGIN IN ROLE "acme" PASSWORD '********'`)
	password := r.Password
	if r.Login != "acme.login" || len(password) < 26 {
		t.Fatalf("login %q with a password of %d characters, want acme.login and at least 26", r.Login, len(password))
	}
	if owner := scalar[string](t, db, "SELECT nspowner::regrole::text FROM pg_catalog.pg_namespace WHERE nspname = 'acme'"); owner != engineRole {
		t.Errorf("schema acme owned by %s, want %s", owner, engineRole)
	}
	if scalar[bool](t, db, "SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = 'acme'") {
		t.Error("the tenant role can log in")
	}
	if !scalar[bool](t, db, "SELECT rolcanlogin AND pg_catalog.pg_has_role(oid, 'acme', 'MEMBER') FROM pg_catalog.pg_roles WHERE rolname = 'acme.login'") {
		t.Error("acme.login cannot log in or is no member of acme")
	}
	verifier := scalar[string](t, db, "SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = 'acme.login'")
	if !strings.HasPrefix(verifier, "SCRAM-SHA-256$4096:") {
		t.Errorf("stored password %q, want a SCRAM-SHA-256 verifier", verifier)
	}
	checkLastHistory(t, db, "acme", 1, create, r)

	// Neither the password nor its verifier shows anywhere.
	var shown []string
	shown = append(shown, r.Statements...)
	for _, h := range history(t, db, "acme") {
		shown = append(shown, h.Statements...)
	}
	for _, s := range rec.Ended() {
		for _, kv := range s.Attributes() {
			shown = append(shown, kv.Value.Emit())
		}
	}
	logs.mu.Lock()
	shown = append(shown, logs.buf.String())
	logs.mu.Unlock()
	for _, secret := range []string{password, verifier, strings.SplitN(verifier, "$", 3)[2]} {
		if slices.ContainsFunc(shown, func(s string) bool { return strings.Contains(s, secret) }) {
			t.Errorf("%q shows in statements, history, spans or logs", secret)
		}
	}

	// In place: unchanged, the login role named, no password.
	if again := db.apply(t, "acme", &CreateTenant{Org: "acme", Login: true}); again.Status != Unchanged || again.Login != "acme.login" || again.Password != "" {
		t.Errorf("create_tenant again: %+v, want unchanged with the login role and no password", again)
	}

	model := &CreateModel{Model: "invoice", Fields: invoiceFields()}
	r = db.apply(t, "acme", model)
	wantApplied(t, r, "CREATE TABLE", `GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES ON TABLE "acme"."invoice" TO "acme"`)
	if owner := tableOwner(t, db, "acme.invoice"); owner != engineRole {
		t.Errorf("acme.invoice owned by %s, want %s", owner, engineRole)
	}
	checkAgree(t, db, "acme", "acme", "invoice")

	// The login role signs in with the password (SCRAM over TCP) and uses
	// the table as the tenant, but can neither change nor drop it, nor
	// reach the engine's catalog and lock.
	member := db.connect(t, "acme.login", password)
	if _, err := member.Exec(ctx, "INSERT INTO acme.invoice (id, name) VALUES (1, 'one')"); err != nil {
		t.Fatalf("tenant member's insert: %v", err)
	}
	var name string
	if err := member.QueryRow(ctx, "SELECT name FROM acme.invoice WHERE id = 1").Scan(&name); err != nil || name != "one" {
		t.Errorf("tenant member's select: %q, %v", name, err)
	}
	for _, sql := range []string{
		"ALTER TABLE acme.invoice ADD COLUMN x int",
		"DROP TABLE acme.invoice",
		"INSERT INTO pgmigrate.locks (org) VALUES ('acme')",
		"SELECT org FROM pgmigrate.locks FOR UPDATE",
		"SELECT count(*) FROM pgmigrate.history",
	} {
		if _, err := member.Exec(ctx, sql); sqlState(err) != "42501" {
			t.Errorf("tenant member's %s: %v, want 42501", sql, err)
		}
	}

	db.apply(t, "acme", &AddField{Model: "invoice", Field: FieldSpec{Name: "amount", Type: Int, Unique: true}})
	checkAgree(t, db, "acme", "acme", "invoice")

	member.Close(ctx)
	r = db.apply(t, "acme", &DropTenant{Org: "acme"})
	wantApplied(t, r, `DROP SCHEMA "acme" CASCADE`, `DROP ROLE "acme.login"`, `DROP ROLE "acme"`)
	if schemaExists(t, db, "acme") {
		t.Error("schema acme still exists")
	}
	if n := scalar[int](t, db, "SELECT count(*)::int FROM pg_catalog.pg_roles WHERE rolname IN ('acme', 'acme.login')"); n != 0 {
		t.Errorf("%d of the tenant's roles left", n)
	}
	if n := scalar[int](t, db, "SELECT count(*)::int FROM pgmigrate.tenants"); n != 0 {
		t.Errorf("%d tenants still registered", n)
	}
}

func TestCreateTenantAdoptsSchema(t *testing.T) {
	setups := []struct {
		engine string // the engine's role
		newDB  func(testing.TB) *testDB
	}{
		{pgtest.Superuser, func(t testing.TB) *testDB { return newTestDB(t, testOptions(), "acme") }},
		{engineRole, func(t testing.TB) *testDB {
			db := newEngineRoleDB(t, testOptions())
			if err := db.execAs(t, engineRole, "CREATE SCHEMA acme"); err != nil {
				t.Fatal(err)
			}
			return db
		}},
	}
	for _, setup := range setups {
		t.Run(setup.engine, func(t *testing.T) {
			db := setup.newDB(t)
			db.dropRolesAtEnd(t, "acme")
			db.apply(t, "acme", &CreateModel{Model: "invoice", Fields: invoiceFields()})
			err := db.execAs(t, setup.engine, `INSERT INTO acme.invoice (id, name) VALUES (1, 'a'), (2, 'b');
CREATE TABLE acme.note (body text); INSERT INTO acme.note VALUES ('kept')`)
			if err != nil {
				t.Fatal(err)
			}
			data := func() string {
				t.Helper()
				return scalar[string](t, db, `SELECT (SELECT string_agg(id || ':' || name, ',' ORDER BY id) FROM acme.invoice)
     || '|' || (SELECT string_agg(body, ',') FROM acme.note)`)
			}
			before := data()

			create := &CreateTenant{Org: "acme"}
			r := db.apply(t, "acme", create)
			wantApplied(t, r, `CREATE ROLE "acme" NOLOGIN`, `GRANT USAGE, CREATE ON SCHEMA "acme" TO "acme"`, "ALTER DEFAULT PRIVILEGES",
				`ON TABLE "acme"."invoice" TO "acme"`, `ON TABLE "acme"."note" TO "acme"`)
			if slices.ContainsFunc(r.Statements, func(s string) bool { return strings.Contains(s, "CREATE SCHEMA") }) {
				t.Errorf("adopting an existing schema creates one: %q", r.Statements)
			}
			if after := data(); after != before {
				t.Errorf("adopting the schema changed its data: %q -> %q", before, after)
			}
			wantPrivileges(t, db, "acme", "acme.invoice", "acme.note")
			if owner := tableOwner(t, db, "acme.note"); owner != setup.engine {
				t.Errorf("acme.note owned by %s", owner)
			}
			checkLastHistory(t, db, "acme", 2, create, r)
			wantUnchanged(t, db, "acme", create)

			// Only the registration missing: registered again, without
			// statements, and unchanged (the schema is adopted).
			db.exec(t, "DELETE FROM pgmigrate.tenants WHERE org = 'acme'")
			r = db.apply(t, "acme", create)
			if r.Status != Unchanged || len(r.Statements) != 0 {
				t.Errorf("registering again: %+v, want unchanged without statements", r)
			}
			if got := scalar[string](t, db, "SELECT schema FROM pgmigrate.tenants WHERE org = 'acme'"); got != "acme" {
				t.Errorf("registered schema %q", got)
			}
			checkLastHistory(t, db, "acme", 3, create, r)
			wantUnchanged(t, db, "acme", create)
		})
	}
}

func TestNotOwnedTableNeverRead(t *testing.T) {
	db := newEngineRoleDB(t, testOptions())
	db.dropRolesAtEnd(t, "acme")
	ctx := testCtx(t)
	db.apply(t, "acme", &CreateTenant{Org: "acme"})
	db.apply(t, "acme", &CreateModel{Model: "invoice", Fields: invoiceFields()})
	// A table of the tenant's own, armed: reading it under its row policy,
	// or writing it, calls the tenant's function, which leaves a row in
	// acme.side.
	err := db.execAs(t, "acme", `
CREATE TABLE acme.side (who text);
GRANT INSERT ON acme.side TO PUBLIC;
CREATE FUNCTION acme.trap() RETURNS boolean LANGUAGE sql AS $$ INSERT INTO acme.side VALUES (current_user) RETURNING true $$;
CREATE FUNCTION acme.trap_trigger() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM acme.trap(); RETURN NULL; END $$;
CREATE TABLE acme.secret (id int PRIMARY KEY);
INSERT INTO acme.secret VALUES (1);
CREATE TRIGGER trap BEFORE INSERT OR UPDATE OR DELETE ON acme.secret FOR EACH ROW EXECUTE FUNCTION acme.trap_trigger();
CREATE TRIGGER trap_truncate BEFORE TRUNCATE ON acme.secret FOR EACH STATEMENT EXECUTE FUNCTION acme.trap_trigger();
CREATE POLICY trap ON acme.secret USING (acme.trap());
ALTER TABLE acme.secret ENABLE ROW LEVEL SECURITY;
GRANT ALL ON acme.secret TO PUBLIC;`)
	if err != nil {
		t.Fatal(err)
	}
	calls := func() int {
		t.Helper()
		return scalar[int](t, db, "SELECT count(*)::int FROM acme.side")
	}

	ops := []Operation{
		&AddField{Model: "secret", Field: FieldSpec{Name: "note", Type: Text}},
		&AddField{Model: "secret", Field: FieldSpec{Name: "code", Type: Int, Nullable: nullable(false), Unique: true}},
		&AlterField{Model: "secret", Field: FieldSpec{Name: "id", Type: Int, PrimaryKey: true, Default: jsonValue(t, 1)}},
		&RenameField{Model: "secret", From: "id", To: "key"},
		&DropField{Model: "secret", Field: "id"},
		&CreateModel{Model: "secret", Fields: []FieldSpec{{Name: "id", Type: Int, PrimaryKey: true}}},
		&DropModel{Model: "secret"},
		&AddField{Model: "invoice", Field: FieldSpec{Name: "secret_id", Type: Int, References: &Reference{Table: "secret", Column: "id"}}},
	}
	const hint = "CALL migrate.adopt_model('secret', org => 'acme') from an admin session makes it managed."
	for _, op := range ops {
		for _, run := range []func(context.Context, string, Operation) (Result, error){db.engine.Plan, db.engine.Apply} {
			_, err := run(ctx, "acme", op)
			if e := wantErr[*NotOwnedError](t, err, "42501"); e.Table != "secret" || e.Hint() != hint {
				t.Errorf("%s: %v, hint %q", op.Kind(), err, e.Hint())
			}
		}
	}
	// It cannot be adopted with its trigger and policy; without them,
	// taking it over would be PostgreSQL's call, and the engine's role is
	// no member of the tenant role that owns it.
	_, err = db.engine.Apply(ctx, "acme", &AdoptModel{Model: "secret"})
	wantErr[*UnsupportedTableError](t, err, "0A000")
	if err := db.execAs(t, "acme", "CREATE TABLE acme.plain (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	_, err = db.engine.Apply(ctx, "acme", &AdoptModel{Model: "plain"})
	wantErr[*pgconn.PgError](t, err, "42501")
	if n := calls(); n != 0 {
		t.Errorf("the tenant's function ran %d times", n)
	}
	if cols := columnNames(t, db, "acme", "secret"); !slices.Equal(cols, []string{"id"}) || tableOwner(t, db, "acme.secret") != "acme" {
		t.Errorf("acme.secret changed: columns %v, owner %s", cols, tableOwner(t, db, "acme.secret"))
	}
	if cols := columnNames(t, db, "acme", "invoice"); !slices.Equal(cols, []string{"id", "name"}) {
		t.Errorf("invoice columns %v", cols)
	}
	if n := historyRows(t, db, "acme"); n != 2 {
		t.Errorf("history rows %d, want 2", n)
	}

	// The trap is armed: the engine's role reading the table under row
	// security would have run the tenant's function.
	if err := db.execAs(t, engineRole, "SELECT EXISTS (SELECT 1 FROM acme.secret)"); err != nil {
		t.Fatal(err)
	}
	if n := calls(); n != 1 {
		t.Errorf("the armed trap ran %d times, want 1", n)
	}

	// The engine's role drops the tenant with what the tenant made in it.
	wantApplied(t, db.apply(t, "acme", &DropTenant{Org: "acme"}), "DROP SCHEMA", `DROP ROLE "acme"`)
	if schemaExists(t, db, "acme") || scalar[bool](t, db, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'acme')") {
		t.Error("the tenant's schema or role is left")
	}
}

func TestAdoptModel(t *testing.T) {
	db := newTestDB(t, testOptions(), "acme")
	db.dropRolesAtEnd(t, "acme")
	ctx := testCtx(t)
	db.apply(t, "acme", &CreateTenant{Org: "acme"})
	if err := db.execAs(t, "acme", "CREATE TABLE acme.customers (id int PRIMARY KEY, name text); INSERT INTO acme.customers VALUES (1, 'Ada'), (2, 'Grace')"); err != nil {
		t.Fatal(err)
	}
	email := &AddField{Model: "customers", Field: FieldSpec{Name: "email", Type: String, Unique: true}}
	_, err := db.engine.Apply(ctx, "acme", email)
	wantErr[*NotOwnedError](t, err, "42501")

	adopt := &AdoptModel{Model: "customers"}
	r := db.apply(t, "acme", adopt)
	wantApplied(t, r, `ALTER TABLE "acme"."customers" OWNER TO CURRENT_USER`, `ON TABLE "acme"."customers" TO "acme"`)
	if owner := tableOwner(t, db, "acme.customers"); owner != pgtest.Superuser {
		t.Errorf("acme.customers owned by %s after adoption", owner)
	}
	wantPrivileges(t, db, "acme", "acme.customers")
	m := checkAgree(t, db, "acme", "acme", "customers")
	if want := []FieldSpec{{Name: "id", Type: Int, PrimaryKey: true}, {Name: "name", Type: Text}}; !reflect.DeepEqual(m.Fields, want) {
		t.Errorf("adopted fields %+v, want %+v", m.Fields, want)
	}
	checkLastHistory(t, db, "acme", 2, adopt, r)
	wantUnchanged(t, db, "acme", adopt)

	wantApplied(t, db.apply(t, "acme", email), "ADD COLUMN", "UNIQUE")
	checkAgree(t, db, "acme", "acme", "customers")
	if got := scalar[string](t, db, "SELECT string_agg(id || name, ',' ORDER BY id) FROM acme.customers"); got != "1Ada,2Grace" {
		t.Errorf("rows after adoption: %q", got)
	}
	if err := db.execAs(t, "acme", "INSERT INTO acme.customers (id, name, email) VALUES (3, 'Linus', 'l@x')"); err != nil {
		t.Errorf("the tenant's insert into the adopted table: %v", err)
	}
	if err := db.execAs(t, "acme", "ALTER TABLE acme.customers ADD COLUMN x int"); sqlState(err) != "42501" {
		t.Errorf("the tenant's ALTER TABLE of the adopted table: %v, want 42501", err)
	}
}

func TestAdoptModelRefusesUnsupportedColumns(t *testing.T) {
	db := newTestDB(t, testOptions(), "acme")
	db.dropRolesAtEnd(t, "acme")
	ctx := testCtx(t)
	db.apply(t, "acme", &CreateTenant{Org: "acme"})
	if err := db.execAs(t, "acme", "CREATE TABLE acme.gadgets (id int PRIMARY KEY, price numeric(10,2), made timestamptz DEFAULT now())"); err != nil {
		t.Fatal(err)
	}
	acl := func() string {
		t.Helper()
		return scalar[string](t, db, "SELECT COALESCE(relacl::text, '') FROM pg_catalog.pg_class WHERE oid = 'acme.gadgets'::regclass")
	}
	before := acl()

	for _, want := range []struct{ column, typ, drop string }{
		{"price", "numeric(10,2)", "ALTER TABLE acme.gadgets DROP COLUMN price"},
		{"made", "timestamp with time zone", ""},
	} {
		_, err := db.engine.Apply(ctx, "acme", &AdoptModel{Model: "gadgets"})
		e := wantErr[*UnsupportedColumnError](t, err, "0A000")
		if e.Column != want.column || e.Type != want.typ || !strings.Contains(err.Error(), want.column) {
			t.Errorf("error %v names column %q (%s), want %q (%s)", err, e.Column, e.Type, want.column, want.typ)
		}
		if owner := tableOwner(t, db, "acme.gadgets"); owner != "acme" || acl() != before {
			t.Errorf("refused adoption changed the table: owner %s, privileges %s", owner, acl())
		}
		_, err = db.engine.Describe(ctx, "acme", "gadgets")
		wantErr[*UnknownModelError](t, err, "42P01")
		if n := historyRows(t, db, "acme"); n != 1 {
			t.Errorf("history rows %d, want 1", n)
		}
		if want.drop != "" {
			if err := db.execAs(t, "acme", want.drop); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// oldCatalogKey is the advisory lock key ("pgmigrat") that creating the
// catalog used to take, which any session could hold.
const oldCatalogKey = 0x70676d6967726174

func TestTenantLockOutOfTenantsReach(t *testing.T) {
	// A session holding the key that creating the catalog used to take
	// holds nothing up.
	fresh := newTestDB(t, testOptions())
	newBlocker(t, fresh, fmt.Sprintf("SELECT pg_advisory_lock(%d)", oldCatalogKey))
	if err := fresh.engine.Init(testCtx(t)); err != nil {
		t.Fatalf("init while the old catalog key is held: %v", err)
	}

	// Once the catalog is current, the keys the engine used to lock with
	// hold nothing up.
	db := newInvoiceDB(t, testOptions())
	newBlocker(t, db, fmt.Sprintf("SELECT pg_advisory_lock(hashtextextended('pgmigrate:tenant:acme', 0)), pg_advisory_lock(%d)", oldCatalogKey))
	r, err := db.newEngine(t, testOptions()).Apply(testCtx(t), "acme", addAmount)
	if err != nil {
		t.Fatalf("apply while the advisory keys are held: %v", err)
	}
	if r.Status != Applied || r.Attempts != 1 {
		t.Errorf("result %+v, want applied at the first attempt", r)
	}

	// The lock that creating or upgrading the catalog takes is out of a
	// tenant's reach.
	db.dropRolesAtEnd(t, "acme")
	db.apply(t, "acme", &CreateTenant{Org: "acme"})
	for _, sql := range []string{
		"LOCK TABLE pgmigrate.version IN SHARE ROW EXCLUSIVE MODE",
		"SELECT version FROM pgmigrate.version FOR UPDATE",
	} {
		if err := db.execAs(t, "acme", "BEGIN; "+sql); sqlState(err) != "42501" {
			t.Errorf("the tenant's %s: %v, want 42501", sql, err)
		}
	}
}

// waitForQuery waits until a session of db runs a query starting with
// prefix and waits for a lock.
func waitForQuery(t testing.TB, db *testDB, prefix string) {
	t.Helper()
	for !scalar[bool](t, db, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity
WHERE datname = $1 AND query LIKE $2 || '%' AND wait_event_type = 'Lock')`, db.name, prefix) {
		select {
		case <-testCtx(t).Done():
			t.Fatalf("no session waits in %q", prefix)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// applyAsync applies op in a goroutine; the channel yields the outcome.
func applyAsync(ctx context.Context, e *Engine, op Operation) <-chan error {
	done := make(chan error, 1)
	go func() {
		r, err := e.Apply(ctx, "acme", op)
		if err == nil && r.Status != Applied {
			err = fmt.Errorf("%s: status %s", op.Kind(), r.Status)
		}
		done <- err
	}()
	return done
}

func TestApplySerialisedAcrossEngines(t *testing.T) {
	opts := testOptions()
	opts.LockTimeout = 10 * time.Second
	db := newInvoiceDB(t, opts)
	ctx := testCtx(t)
	b := newBlocker(t, db, lockInvoice)

	first := applyAsync(ctx, db.engine, addAmount)
	waitForQuery(t, db, "ALTER TABLE")
	note := &AddField{Model: "invoice", Field: FieldSpec{Name: "note", Type: Text}}
	second := applyAsync(ctx, db.newEngine(t, opts), note)
	waitForQuery(t, db, "INSERT INTO pgmigrate.locks")
	if err := b.release(); err != nil {
		t.Fatal(err)
	}
	for _, done := range []<-chan error{first, second} {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	var fields []string
	for _, h := range history(t, db, "acme")[1:] {
		fields = append(fields, h.Field)
	}
	if !slices.Equal(fields, []string{"amount", "note"}) {
		t.Errorf("history fields %v, want [amount note]: the second waited for the first", fields)
	}
}

func TestApplyWaitsForItsOrgWithoutConnections(t *testing.T) {
	opts := testOptions()
	opts.LockTimeout = 10 * time.Second
	db := newInvoiceDB(t, opts)
	ctx := testCtx(t)
	// Three connections: one Apply's lock and work, and one spare.
	pool := newPool(t, cluster.DSN(pgtest.Superuser, db.name), 3)
	e := New(pool, opts)
	if _, err := e.ListModels(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	b := newBlocker(t, db, lockInvoice)
	first := applyAsync(ctx, e, addAmount)
	waitForQuery(t, db, "ALTER TABLE")

	acquired := pool.Stat().AcquireCount()
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err := e.Apply(short, "acme", &AddField{Model: "invoice", Field: FieldSpec{Name: "note", Type: Text}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("apply behind another of its org, cancelled: %v, want the deadline", err)
	}
	if n := pool.Stat().AcquireCount(); n != acquired {
		t.Errorf("the waiting apply took %d connections", n-acquired)
	}
	if err := b.release(); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}

	// Many at once on a pool of two connections, as one Apply takes: each
	// waits its turn.
	e = New(newPool(t, cluster.DSN(pgtest.Superuser, db.name), 2), opts)
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for i := range 5 {
		wg.Go(func() {
			errs <- <-applyAsync(ctx, e, &AddField{Model: "invoice", Field: FieldSpec{Name: fmt.Sprintf("f%d", i), Type: Int}})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := len(columnNames(t, db, "acme", "invoice")); n != 8 {
		t.Errorf("invoice has %d columns, want 8", n)
	}
}

func TestPoolAcquireTimeout(t *testing.T) {
	db := newInvoiceDB(t, testOptions())
	ctx := testCtx(t)
	opts := testOptions()
	opts.AcquireTimeout = 100 * time.Millisecond
	opts.Retry.MaxAttempts = 2
	pool := newPool(t, cluster.DSN(pgtest.Superuser, db.name), 1)
	e := New(pool, opts)
	if _, err := e.ListModels(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	held, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}

	r, err := e.Apply(ctx, "acme", addAmount)
	wantErr[*PoolTimeoutError](t, err, "53300")
	if r.Attempts != 2 {
		t.Errorf("attempts %d, want 2: a pool timeout is retried", r.Attempts)
	}
	if want := "engine connection pool exhausted: no connection free within 100ms"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	_, err = e.Describe(ctx, "acme", "invoice")
	wantErr[*PoolTimeoutError](t, err, "53300")

	held.Release()
	if _, err := e.Describe(ctx, "acme", "invoice"); err != nil {
		t.Errorf("describe once the connection is free: %v", err)
	}
}

func TestActorRecorded(t *testing.T) {
	var logs syncBuffer
	opts := testOptions()
	opts.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	db := newInvoiceDB(t, opts)

	if _, err := db.engine.Apply(WithActor(testCtx(t), "alice", "psql"), "acme", addAmount); err != nil {
		t.Fatal(err)
	}
	h := history(t, db, "acme")
	if h[0].AppliedBy != pgtest.Superuser || h[0].Application != "" {
		t.Errorf("without an actor: applied by %q with %q, want the engine's role and none", h[0].AppliedBy, h[0].Application)
	}
	if h[1].AppliedBy != "alice" || h[1].Application != "psql" {
		t.Errorf("with an actor: applied by %q with %q, want alice with psql", h[1].AppliedBy, h[1].Application)
	}
	lines := logs.lines(t)
	if by := logLine(t, lines, "CREATE TABLE")["applied_by"]; by != pgtest.Superuser {
		t.Errorf("CREATE TABLE logged applied_by %v", by)
	}
	if by := logLine(t, lines, "ALTER TABLE ADD COLUMN")["applied_by"]; by != "alice" {
		t.Errorf("ALTER TABLE ADD COLUMN logged applied_by %v", by)
	}
}

func TestPosture(t *testing.T) {
	db := newTestDB(t, testOptions())
	db.dropRolesAtEnd(t, "shared_user", "shared_group", "acme.login", "acme", "beta", "gamma")
	ctx := testCtx(t)
	db.apply(t, "acme", &CreateTenant{Org: "acme", Login: true})
	db.apply(t, "beta", &CreateTenant{Org: "beta"})
	db.apply(t, "gamma", &CreateTenant{Org: "gamma", NoCreate: true})
	posture := func(denyCreate bool) []Finding {
		t.Helper()
		f, err := db.engine.Posture(ctx, denyCreate)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	if f := posture(false); len(f) != 0 {
		t.Errorf("findings on tenants set up by the engine: %+v", f)
	}

	db.exec(t, `CREATE ROLE shared_user LOGIN IN ROLE acme, beta;
CREATE ROLE shared_group NOLOGIN IN ROLE acme, beta, gamma;
GRANT USAGE ON SCHEMA beta TO PUBLIC;
CREATE TABLE gamma.notes (id int);
GRANT SELECT ON gamma.notes TO shared_user`)
	base := []Finding{
		{SharedLogin, "shared_user", `login role shared_user is a member of the tenant roles of acme, beta, so its sessions can act for each of them`},
		{PublicSchemaGrant, "beta", `PUBLIC holds USAGE on tenant schema beta, so every role has it`},
		{LoginGrant, "shared_user", `login role shared_user holds privileges of its own in tenant schema gamma: a session of it that leaves its tenant role keeps them`},
	}
	if f := posture(false); !reflect.DeepEqual(f, base) {
		t.Errorf("findings %+v, want %+v", f, base)
	}
	want := append(base,
		Finding{TenantCreate, "acme", `tenant role acme may create objects in schema acme, where raw DDL is denied`},
		Finding{TenantCreate, "beta", `tenant role beta may create objects in schema beta, where raw DDL is denied`})
	if f := posture(true); !reflect.DeepEqual(f, want) {
		t.Errorf("findings with raw DDL denied %+v, want %+v", f, want)
	}
}

// authState describes what tenant operations change: the roles with their
// attributes and memberships, the schemas, the registrations and the
// history.
func authState(t testing.TB, db *testDB) string {
	t.Helper()
	return scalar[string](t, db, `SELECT concat_ws(E'\n',
  (SELECT string_agg(pg_catalog.format('%s login=%s super=%s createrole=%s createdb=%s', rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb), ', ' ORDER BY rolname)
   FROM pg_catalog.pg_roles),
  (SELECT string_agg(pg_catalog.format('%s in %s', member::regrole, roleid::regrole), ', ' ORDER BY member::regrole::text, roleid::regrole::text)
   FROM pg_catalog.pg_auth_members),
  (SELECT string_agg(nspname, ', ' ORDER BY nspname) FROM pg_catalog.pg_namespace),
  (SELECT string_agg(org, ', ' ORDER BY org) FROM pgmigrate.tenants),
  (SELECT count(*)::text FROM pgmigrate.history))`)
}

func TestTenantRoleMustBeSafe(t *testing.T) {
	db := newEngineRoleDB(t, testOptions())
	db.dropRolesAtEnd(t, "acme_login", "builder", "grouped", "staff", "readers", engineRole+".login")
	ctx := testCtx(t)
	db.exec(t, `CREATE ROLE acme_login LOGIN;
CREATE ROLE builder NOLOGIN CREATEDB;
CREATE ROLE staff NOLOGIN;
CREATE ROLE grouped NOLOGIN IN ROLE staff;
CREATE ROLE readers NOLOGIN;
CREATE TABLE public.ledger (id int);
GRANT SELECT ON public.ledger TO readers`)
	if err := db.engine.Init(ctx); err != nil {
		t.Fatal(err)
	}
	before := authState(t, db)

	// A role named like the org that is the engine's own, can log in (an
	// older engine's login role of acme), may do more than a tenant, or
	// is a member of another role is neither taken as the tenant role nor
	// dropped with the tenant.
	for _, c := range []struct{ org, reason string }{
		{engineRole, "it is the engine's role"},
		{"acme_login", "it can log in"},
		{"builder", "it has CREATEDB"},
		{"grouped", `it is a member of "staff"`},
		{"readers", "it owns or holds privileges on table public.ledger, outside the tenant's schema"},
	} {
		want := fmt.Sprintf("role %q exists and cannot be a tenant role: %s", c.org, c.reason)
		for _, op := range []Operation{&CreateTenant{Org: c.org}, &CreateTenant{Org: c.org, Login: true}, &DropTenant{Org: c.org}} {
			for _, run := range []func(context.Context, string, Operation) (Result, error){db.engine.Plan, db.engine.Apply} {
				r, err := run(ctx, c.org, op)
				e := wantErr[*UnsafeRoleError](t, err, "42501")
				if e.Role != c.org || err.Error() != want || r.Password != "" {
					t.Errorf("%s %s: %v (password %q), want %q", op.Kind(), c.org, err, r.Password, want)
				}
			}
		}
	}
	if after := authState(t, db); after != before {
		t.Errorf("refused operations changed roles, schemas or the catalog:\n%s\nto\n%s", before, after)
	}

	// PostgreSQL reserves the names starting with pg_ (its predefined
	// roles): no org has one.
	for _, org := range []string{"pg_monitor", "pg_read_all_data"} {
		for _, op := range []Operation{&CreateTenant{Org: org}, &CreateTenant{Org: org, Login: true}, &DropTenant{Org: org}} {
			_, err := db.engine.Apply(ctx, org, op)
			wantErr[*InvalidSpecError](t, err, "22023")
		}
	}
	if after := authState(t, db); after != before {
		t.Errorf("refused operations changed roles, schemas or the catalog:\n%s\nto\n%s", before, after)
	}
}

func TestTenantLoginRoleMustBeSafe(t *testing.T) {
	db := newEngineRoleDB(t, testOptions())
	db.dropRolesAtEnd(t, "acme.login", "acme", "staff")
	ctx := testCtx(t)
	db.apply(t, "acme", &CreateTenant{Org: "acme"})
	db.exec(t, "CREATE ROLE staff NOLOGIN")

	// A role named like acme's login role is taken as it, or dropped with
	// the tenant, only if it is one the engine would have made.
	for _, c := range []struct{ create, reason string }{
		{`CREATE ROLE "acme.login" NOLOGIN IN ROLE acme`, "it cannot log in"},
		{`CREATE ROLE "acme.login" LOGIN CREATEDB IN ROLE acme`, "it has CREATEDB"},
		{`CREATE ROLE "acme.login" LOGIN`, `it is not a member of "acme"`},
		{`CREATE ROLE "acme.login" LOGIN IN ROLE acme, staff`, `it is also a member of "staff"`},
	} {
		db.exec(t, c.create)
		before := authState(t, db)
		want := `role "acme.login" exists and cannot be a tenant's login role: ` + c.reason
		for _, op := range []Operation{&CreateTenant{Org: "acme", Login: true}, &DropTenant{Org: "acme"}} {
			r, err := db.engine.Apply(ctx, "acme", op)
			e := wantErr[*UnsafeRoleError](t, err, "42501")
			if e.Role != "acme.login" || err.Error() != want || r.Password != "" {
				t.Errorf("%s with %s: %v (password %q), want %q", op.Kind(), c.create, err, r.Password, want)
			}
		}
		if after := authState(t, db); after != before {
			t.Errorf("refused operations changed roles, schemas or the catalog:\n%s\nto\n%s", before, after)
		}
		db.exec(t, `DROP ROLE "acme.login"`)
	}

	// One as the engine makes it is taken as it is, and dropped with the
	// tenant.
	db.exec(t, `CREATE ROLE "acme.login" LOGIN IN ROLE acme`)
	if r := db.apply(t, "acme", &CreateTenant{Org: "acme", Login: true}); r.Status != Unchanged || r.Login != "acme.login" || r.Password != "" {
		t.Errorf("create_tenant with its login role in place: %+v, want unchanged, acme.login, no password", r)
	}
	wantApplied(t, db.apply(t, "acme", &DropTenant{Org: "acme"}), `DROP ROLE "acme.login"`, `DROP ROLE "acme"`)
	if n := scalar[int](t, db, "SELECT count(*)::int FROM pg_catalog.pg_roles WHERE rolname IN ('acme', 'acme.login')"); n != 0 {
		t.Errorf("%d of the tenant's roles left", n)
	}
}

func TestAdoptModelRefusesTenantCode(t *testing.T) {
	db := newTestDB(t, testOptions(), "acme")
	db.dropRolesAtEnd(t, "acme")
	ctx := testCtx(t)
	db.apply(t, "acme", &CreateTenant{Org: "acme"})
	// Tables of the tenant's, each with one thing that would run the
	// tenant's code, or reach a table the engine does not own, with the
	// engine's rights once the engine's role owned the table (the engine
	// here is a superuser, so PostgreSQL would let it take any over).
	err := db.execAs(t, "acme", `
CREATE FUNCTION acme.same(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1';
CREATE FUNCTION acme.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TABLE acme.triggered (id int PRIMARY KEY);
CREATE TRIGGER touch BEFORE INSERT ON acme.triggered FOR EACH ROW EXECUTE FUNCTION acme.touch();
CREATE TABLE acme.ruled (id int PRIMARY KEY);
CREATE RULE tell AS ON INSERT TO acme.ruled DO ALSO NOTIFY ruled;
CREATE TABLE acme.secured (id int PRIMARY KEY);
ALTER TABLE acme.secured ENABLE ROW LEVEL SECURITY;
CREATE TABLE acme.forced (id int PRIMARY KEY);
ALTER TABLE acme.forced FORCE ROW LEVEL SECURITY;
CREATE TABLE acme.policed (id int PRIMARY KEY);
CREATE POLICY mine ON acme.policed USING (acme.same(id) > 0);
CREATE TABLE acme.checked (id int PRIMARY KEY CONSTRAINT positive CHECK (acme.same(id) > 0));
CREATE TABLE acme.expressed (id int PRIMARY KEY);
CREATE INDEX expressed_same ON acme.expressed ((acme.same(id)));
CREATE TABLE acme.partial (id int PRIMARY KEY);
CREATE INDEX partial_positive ON acme.partial (id) WHERE acme.same(id) > 0;
CREATE TABLE acme.measured (id int PRIMARY KEY, n int);
CREATE STATISTICS acme.measured_stats ON id, n FROM acme.measured;
CREATE TABLE acme.generated (id int PRIMARY KEY, twice int GENERATED ALWAYS AS (acme.same(id) * 2) STORED);
CREATE TABLE acme.parted (id int) PARTITION BY RANGE (id);
CREATE TABLE acme.base (id int);
CREATE TABLE acme.kid () INHERITS (acme.base);
CREATE TABLE acme.target (id int PRIMARY KEY);
CREATE TABLE acme.pointing (id int PRIMARY KEY, target_id int CONSTRAINT to_target REFERENCES acme.target ON DELETE CASCADE);`)
	if err != nil {
		t.Fatal(err)
	}
	before := scalar[string](t, db, `SELECT string_agg(relname || ':' || relowner::regrole::text || ':' || COALESCE(relacl::text, ''), ', ' ORDER BY relname)
FROM pg_catalog.pg_class WHERE relnamespace = 'acme'::regnamespace`)
	for _, c := range []struct{ table, what string }{
		{"triggered", "trigger touch"},
		{"ruled", "rule tell"},
		{"secured", "row-level security"},
		{"forced", "row-level security"},
		{"policed", "policy mine"},
		{"checked", "check constraint positive"},
		{"expressed", "index expressed_same on an expression"},
		{"partial", "partial index partial_positive"},
		{"measured", "statistics measured_stats"},
		{"generated", "generated column twice"},
		{"parted", "partitions"},
		{"base", "child table acme.kid"},
		{"kid", "parent table acme.base"},
		{"pointing", "foreign key to_target to table acme.target of another owner"},
		{"target", "foreign key to_target from table acme.pointing of another owner"},
	} {
		want := fmt.Sprintf("table %q cannot be a model: it has %s", c.table, c.what)
		for _, run := range []func(context.Context, string, Operation) (Result, error){db.engine.Plan, db.engine.Apply} {
			_, err := run(ctx, "acme", &AdoptModel{Model: c.table})
			if e := wantErr[*UnsupportedTableError](t, err, "0A000"); e.Model != c.table || err.Error() != want {
				t.Errorf("adopt_model %s: %v, want %q", c.table, err, want)
			}
		}
	}
	after := scalar[string](t, db, `SELECT string_agg(relname || ':' || relowner::regrole::text || ':' || COALESCE(relacl::text, ''), ', ' ORDER BY relname)
FROM pg_catalog.pg_class WHERE relnamespace = 'acme'::regnamespace`)
	if after != before {
		t.Errorf("refused adoptions changed the tenant's tables:\n%s\nto\n%s", before, after)
	}
	if models, err := db.engine.ListModels(ctx, "acme"); err != nil || len(models) != 0 {
		t.Errorf("models %v (%v), want none", models, err)
	}
	if n := historyRows(t, db, "acme"); n != 1 {
		t.Errorf("history rows %d, want 1", n)
	}
}

func TestApplyAdmitsWhatThePoolHolds(t *testing.T) {
	orgs := []string{"o1", "o2", "o3", "o4", "o5", "o6", "o7", "o8"}
	db := newTestDB(t, testOptions(), orgs...)
	ctx := testCtx(t)
	for _, org := range orgs {
		db.apply(t, org, &CreateModel{Model: "invoice", Fields: invoiceFields()})
	}
	opts := testOptions()
	opts.AcquireTimeout = time.Second
	e := New(newPool(t, cluster.DSN(pgtest.Superuser, db.name), 4), opts)
	if err := e.Init(ctx); err != nil {
		t.Fatal(err)
	}

	// Eight orgs at once on four connections: two attempts run at a time,
	// each finding the second connection it needs, and the others wait
	// their turn without taking any.
	start := make(chan struct{})
	results := make([]Result, len(orgs))
	errs := make([]error, len(orgs))
	var wg sync.WaitGroup
	for i, org := range orgs {
		wg.Go(func() {
			<-start
			results[i], errs[i] = e.Apply(ctx, org, addAmount)
		})
	}
	close(start)
	wg.Wait()
	for i, org := range orgs {
		if errs[i] != nil || results[i].Status != Applied || results[i].Attempts != 1 {
			t.Errorf("%s: %+v, %v; want applied at the first attempt", org, results[i], errs[i])
		}
	}
}

// TestTenantRoleHoldings: what a tenant role holds in its own schema (the
// engine's tables granted to it, its temporary tables) never counts
// against it, whatever its schema's name needs in quoting; a role that
// owns another schema, which no catalog object places in a schema, is
// not taken as a tenant role.
func TestTenantRoleHoldings(t *testing.T) {
	db := newEngineRoleDB(t, testOptions())
	db.dropRolesAtEnd(t, "acme-corp", "holder")
	ctx := testCtx(t)
	db.apply(t, "acme-corp", &CreateTenant{Org: "acme-corp"})
	db.apply(t, "acme-corp", &CreateModel{Model: "invoice", Fields: []FieldSpec{{Name: "id", Type: Int, PrimaryKey: true}}})
	db.exec(t, `CREATE ROLE holder NOLOGIN; CREATE SCHEMA billing AUTHORIZATION holder`)
	if r := db.apply(t, "acme-corp", &CreateTenant{Org: "acme-corp"}); r.Status != Unchanged {
		t.Errorf("create_tenant again: %s %q", r.Status, r.Statements)
	}
	_, err := db.engine.Apply(ctx, "holder", &CreateTenant{Org: "holder"})
	e := wantErr[*UnsafeRoleError](t, err, "42501")
	if want := `role "holder" exists and cannot be a tenant role: it owns or holds privileges on schema billing, outside the tenant's schema`; e != nil && err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if r := db.apply(t, "acme-corp", &DropTenant{Org: "acme-corp"}); r.Status != Applied {
		t.Errorf("drop_tenant: %s", r.Status)
	}
}

// TestAdoptModelRechecksUnderLock: a tenant holding a lock on its table
// can add a trigger while adopt_model waits for the table; the engine
// reads the table again once it holds it, and refuses it.
func TestAdoptModelRechecksUnderLock(t *testing.T) {
	opts := testOptions()
	opts.LockTimeout = 10 * time.Second
	db := newTestDB(t, opts)
	db.dropRolesAtEnd(t, "acme")
	db.apply(t, "acme", &CreateTenant{Org: "acme"})
	db.exec(t, "CREATE TABLE acme.planted (id int PRIMARY KEY); ALTER TABLE acme.planted OWNER TO acme")
	tenant := newBlocker(t, db, "SET LOCAL ROLE acme; LOCK TABLE acme.planted IN ACCESS SHARE MODE")

	done := make(chan error, 1)
	go func() {
		_, err := db.engine.Apply(testCtx(t), "acme", &AdoptModel{Model: "planted"})
		done <- err
	}()
	ctx := testCtx(t)
	for waiting := false; !waiting; {
		if err := tenant.conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_catalog.pg_locks
WHERE relation = 'acme.planted'::regclass AND mode = 'AccessExclusiveLock' AND NOT granted)`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := tenant.conn.Exec(ctx, `CREATE FUNCTION acme.touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER touch BEFORE INSERT ON acme.planted FOR EACH ROW EXECUTE FUNCTION acme.touch();
COMMIT`); err != nil {
		t.Fatal(err)
	}
	e := wantErr[*UnsupportedTableError](t, <-done, "0A000")
	if e != nil && !slices.Contains(e.What, "trigger touch") {
		t.Errorf("refused for %q, want the trigger", e.What)
	}
	var owner string
	if err := db.pool.QueryRow(ctx, "SELECT pg_catalog.pg_get_userbyid(relowner) FROM pg_catalog.pg_class WHERE oid = 'acme.planted'::regclass").Scan(&owner); err != nil || owner != "acme" {
		t.Errorf("the table's owner is %q (%v), want acme", owner, err)
	}
}

// TestTenantLockLostIsNotCommittedOver: when the connection holding the
// tenant's lock is lost while an attempt works, the attempt does not
// commit without the lock: it fails and is retried under a fresh lock.
func TestTenantLockLostIsNotCommittedOver(t *testing.T) {
	opts := testOptions()
	opts.LockTimeout = 10 * time.Second
	db := newTestDB(t, opts, "acme")
	db.apply(t, "acme", &CreateModel{Model: "items", Fields: []FieldSpec{{Name: "id", Type: Int, PrimaryKey: true}}})
	blocker := newBlocker(t, db, "LOCK TABLE acme.items IN ACCESS EXCLUSIVE MODE")

	done := make(chan Result, 1)
	go func() {
		f, _ := ParseField([]byte(`{"name":"note","type":"Text"}`))
		r, err := db.engine.Apply(testCtx(t), "acme", &AddField{Model: "items", Field: f})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	ctx := testCtx(t)
	// Once the attempt waits for the table, end the lock's connection:
	// the one idle in a transaction that wrote (the lock's row).
	for ended := false; !ended; time.Sleep(10 * time.Millisecond) {
		if err := blocker.conn.QueryRow(ctx, `SELECT count(pg_catalog.pg_terminate_backend(l.pid)) > 0
FROM pg_catalog.pg_stat_activity l
WHERE l.state = 'idle in transaction' AND l.backend_xid IS NOT NULL AND l.datname = current_database()
  AND EXISTS (SELECT FROM pg_catalog.pg_locks w WHERE w.relation = 'acme.items'::regclass AND NOT w.granted)`).Scan(&ended); err != nil {
			t.Fatal(err)
		}
	}
	if err := blocker.release(); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.Status != Applied || r.Attempts != 2 {
		t.Errorf("add_field: %s after %d attempts, want applied after 2 (the first lost its lock)", r.Status, r.Attempts)
	}
}
