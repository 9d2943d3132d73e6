package e2e

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/lib/pq"
)

// TestMigratePsqlCommands runs the command set with psql, one command per
// session, and checks what each prints and what it leaves in the cluster.
func TestMigratePsqlCommands(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	url := p.url("postgres", "", "acme")
	steps := []struct{ call, want string }{
		{`CALL migrate.list_models()`, ""},
		{createInvoice, "applied|acme|invoice||" + createInvoiceSQL + "|1|ms\n"},
		{createInvoice, "unchanged|acme|invoice|||1|ms\n"},
		{addStatus, `applied|acme|invoice|status|ALTER TABLE "acme"."invoice" ADD COLUMN "status" varchar(100) DEFAULT 'draft'|1|ms` + "\n"},
		{`CALL migrate.alter_field('invoice', '{"name":"status","type":"String","default":"open"}')`,
			`applied|acme|invoice|status|ALTER TABLE "acme"."invoice" ALTER COLUMN "status" SET DEFAULT 'open'|1|ms` + "\n"},
		{`CALL migrate.rename_field('invoice', 'status', 'state')`,
			`applied|acme|invoice|status|ALTER TABLE "acme"."invoice" RENAME COLUMN "status" TO "state"|1|ms` + "\n"},
		{`CALL migrate.describe('invoice')`, "id|integer|f|f|||t\n" +
			"title|character varying(200)|f|f|||f\n" +
			"state|character varying(100)|t|f|'open'||f\n"},
		{`CALL migrate.create_model(model => 'customer', fields => '[{"name":"id","type":"Int"}]')`,
			"applied|acme|customer||" + createModelSQL("acme", "customer", `"id" integer PRIMARY KEY`) + "|1|ms\n"},
		{`call MIGRATE.LIST_MODELS()`, "customer\ninvoice\n"},
		{`CALL migrate.drop_field('invoice', 'state')`, `applied|acme|invoice|state|ALTER TABLE "acme"."invoice" DROP COLUMN "state"|1|ms` + "\n"},
		{`CALL migrate.drop_model('customer')`, `applied|acme|customer||DROP TABLE "acme"."customer"|1|ms` + "\n"},
		{`/* after the drops */ CALL migrate.list_models();`, "invoice\n"},
		{`CALL migrate.verify()`, ""},
	}
	for _, s := range steps {
		if got := psqlCalls(t, url, s.call); got != s.want {
			t.Fatalf("%s printed\n%s\nwant\n%s", s.call, got, s.want)
		}
	}
	direct := directConn(t, tn.db)
	wantColumns(t, direct, "acme", "invoice", "id integer", "title character varying(200)")
	wantColumns(t, direct, "acme", "customer")
}

// TestMigrateDryRun plans changes with dry_run => true: the planned SQL
// comes back and nothing changes, in the tables or in the metadata.
func TestMigrateDryRun(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	url := p.url("postgres", "", "acme")
	direct := directConn(t, tn.db)

	planCreate := `CALL migrate.create_model('invoice', '` + invoiceFields + `', dry_run => true)`
	if got, want := psqlCalls(t, url, planCreate), "planned|acme|invoice||"+createInvoiceSQL+"|0|ms\n"; got != want {
		t.Fatalf("dry run of create_model printed %q, want %q", got, want)
	}
	wantColumns(t, direct, "acme", "invoice")
	if got := psqlCalls(t, url, "CALL migrate.list_models()"); got != "" {
		t.Fatalf("after the dry run list_models printed %q", got)
	}

	psqlCalls(t, url, createInvoice)
	plans := []struct{ call, want string }{
		{`CALL migrate.add_field('invoice', '{"name":"status","type":"String","default":"draft"}', dry_run => true)`,
			`planned|acme|invoice|status|ALTER TABLE "acme"."invoice" ADD COLUMN "status" varchar(100) DEFAULT 'draft'|0|ms` + "\n"},
		{`CALL migrate.rename_field('invoice', 'title', 'subject', dry_run => true)`,
			`planned|acme|invoice|title|ALTER TABLE "acme"."invoice" RENAME COLUMN "title" TO "subject"|0|ms` + "\n"},
		{`CALL migrate.drop_model(dry_run => true, model => 'invoice')`, `planned|acme|invoice||DROP TABLE "acme"."invoice"|0|ms` + "\n"},
	}
	for _, pl := range plans {
		if got := psqlCalls(t, url, pl.call); got != pl.want {
			t.Fatalf("%s printed %q, want %q", pl.call, got, pl.want)
		}
	}
	wantColumns(t, direct, "acme", "invoice", "id integer", "title character varying(200)")
	// The proxy provisioned acme at start; the dry runs left no trace.
	if got, want := queryStrings(t, direct, "SELECT operation FROM pgmigrate.history ORDER BY id"), []string{"create_tenant", "create_model"}; !slices.Equal(got, want) {
		t.Fatalf("history holds %q, want %q", got, want)
	}
	if got, want := psqlCalls(t, url, "CALL migrate.describe('invoice')"), "id|integer|f|f|||t\ntitle|character varying(200)|f|f|||f\n"; got != want {
		t.Fatalf("after the dry runs describe printed %q, want %q", got, want)
	}
}

// TestMigratePsqlErrors runs failing commands in one psql session: each
// error shows its SQLSTATE and the session goes on, settings and all.
func TestMigratePsqlErrors(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	url := p.url("postgres", "", "acme")
	psqlCalls(t, url, createInvoice)

	script := `SET application_name = 'kept';
CALL migrate.add_field('invoice', '{"name":"title","type":"Text"}');
CALL migrate.create_model('invoice', '[{"name":"id","type":"Text"}]');
CALL migrate.add_field('receipt', '{"name":"total","type":"Int"}');
CALL migrate.rename_field('invoice', 'total', 'sum');
CALL migrate.add_field('invoice', '{"name":"total","type":"Money"}');
CALL migrate.describe(model => );
CALL migrate.no_such_command();
CALL migrate.drop_field('invoice', 'title', 'extra');
SHOW application_name;
SELECT 1;
`
	stdout, codes, stderr := psqlScript(t, url, script)
	wantCodes := []string{"42701", "42P07", "42P01", "42703", "22023", "42601", "42883", "42601"}
	if !slices.Equal(codes, wantCodes) {
		t.Fatalf("psql reported SQLSTATEs %q, want %q; it printed:\n%s", codes, wantCodes, stderr)
	}
	if !strings.Contains(stderr, `ERROR:  42701: `) || !strings.Contains(stderr, "DETAIL:  ") {
		t.Fatalf("psql printed no DETAIL for the field conflict:\n%s", stderr)
	}
	if want := "kept\n1\n"; stdout != want {
		t.Fatalf("after the errors psql printed %q, want %q (the same session)", stdout, want)
	}
	wantColumns(t, directConn(t, tn.db), "acme", "invoice", "id integer", "title character varying(200)")
}

// TestMigrateNewColumnInSession adds a field between inserts in one
// session: the session uses the new column at once and rows get its
// default.
func TestMigrateNewColumnInSession(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	script := createInvoice + `;
INSERT INTO invoice (id, title) VALUES (1, 'before');
` + addStatus + `;
INSERT INTO invoice (id, title) VALUES (2, 'after');
INSERT INTO invoice (id, title) VALUES (3, 'returning') RETURNING status;
INSERT INTO invoice (id, title, status) VALUES (4, 'explicit', 'paid');
SELECT id, status FROM invoice ORDER BY id;
`
	stdout, codes, stderr := psqlScript(t, p.url("postgres", "", "acme"), script)
	if len(codes) > 0 {
		t.Fatalf("psql reported SQLSTATEs %q:\n%s", codes, stderr)
	}
	want := "applied|acme|invoice||" + createInvoiceSQL + "|1|ms\n" +
		`applied|acme|invoice|status|ALTER TABLE "acme"."invoice" ADD COLUMN "status" varchar(100) DEFAULT 'draft'|1|ms` + "\n" +
		"draft\n" +
		"1|draft\n2|draft\n3|draft\n4|paid\n"
	if stdout != want {
		t.Fatalf("psql printed\n%s\nwant\n%s", stdout, want)
	}
}

// TestMigrateInTransactionBlock refuses migrate commands inside BEGIN ...
// ROLLBACK, in a transaction and in a failed one; the transaction can still
// be rolled back and the command works afterwards.
func TestMigrateInTransactionBlock(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	conn := migrateConn(t, p, "postgres", "", "acme")
	ctx := testContext(t)
	mustExec(t, conn, createInvoice)

	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO invoice (id, title) VALUES (1, 'rolled back')"); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, addStatus)
	wantPgError(t, err, "25001")
	if err := tx.Rollback(ctx); err != nil {
		t.Fatalf("ROLLBACK after the refused command: %v", err)
	}
	if n := queryValue[int](t, conn, "SELECT count(*) FROM invoice"); n != 0 {
		t.Fatalf("after ROLLBACK invoice holds %d rows", n)
	}

	tx, err = conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, "SELECT 1 / 0")
	wantPgError(t, err, "22012")
	_, err = tx.Exec(ctx, addStatus)
	wantPgError(t, err, "25001")
	if err := tx.Rollback(ctx); err != nil {
		t.Fatalf("ROLLBACK of the failed transaction: %v", err)
	}

	direct := directConn(t, tn.db)
	wantColumns(t, direct, "acme", "invoice", "id integer", "title character varying(200)")
	mustExec(t, conn, addStatus)
	if got := tableColumns(t, direct, "acme", "invoice"); !slices.Contains(got, "status character varying(100)") {
		t.Fatalf("add_field after the transaction left acme.invoice with %q", got)
	}
}

// TestMigrateBesideOtherStatements refuses a migrate command sent in one
// Query with other statements, running none of them, passes SQL that only
// mentions a migrate command through to PostgreSQL, and refuses texts that
// only look like one.
func TestMigrateBesideOtherStatements(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	conn := migrateConn(t, p, "postgres", "", "acme")
	mustExec(t, conn, createInvoice)

	wantExecError(t, conn, "SELECT 1; CALL migrate.list_models()", "0A000")
	wantExecError(t, conn, "CALL migrate.list_models(); SELECT 1", "0A000")
	wantExecError(t, conn, "CREATE TABLE marker (); CALL migrate.drop_model('invoice')", "0A000")
	direct := directConn(t, tn.db)
	if got := tableColumns(t, direct, "acme", "invoice"); len(got) != 2 {
		t.Fatalf("acme.invoice has columns %q after the refused drop_model", got)
	}
	if queryValue[bool](t, direct, "SELECT to_regclass('acme.marker') IS NOT NULL") {
		t.Fatal("the statement beside the refused command ran")
	}

	const literal = "CALL migrate.drop_model('invoice')"
	if got := queryValue[string](t, conn, "SELECT 'CALL migrate.drop_model(''invoice'')'"); got != literal {
		t.Fatalf("the string literal came back as %q", got)
	}
	if got := queryValue[string](t, conn, "-- CALL migrate.drop_model('invoice')\nSELECT current_schema()"); got != "acme" {
		t.Fatalf("after a commented-out CALL: %q", got)
	}
	if got := queryValue[int](t, conn, "/* CALL migrate.drop_model('invoice') */ SELECT 2"); got != 2 {
		t.Fatalf("after a commented-out CALL: %d", got)
	}
	// A CALL of another schema's procedure is PostgreSQL's to answer.
	wantExecError(t, direct, "CALL migrator.drop_model('invoice')", "3F000")
	wantExecError(t, conn, "CALL migrator.drop_model('invoice')", "3F000")
	// A text that only parsing tells from a migrate command (U&"..." might
	// have spelled migrate), or that PostgreSQL would read as a procedure
	// of a migrate schema of this database, is the proxy's to refuse, not
	// PostgreSQL's to answer.
	for _, sql := range []string{
		`CALL U&"migr\0061tor".drop_model('invoice')`,
		"CALL " + pgx.Identifier{tn.db}.Sanitize() + ".migrate.drop_model('invoice')",
	} {
		wantExecError(t, direct, sql, "3F000")
		wantExecError(t, conn, sql, "0A000")
	}
	if got := queryStrings(t, conn, "CALL migrate.list_models()"); !slices.Equal(got, []string{"invoice"}) {
		t.Fatalf("list_models returned %q", got)
	}
}

// TestMigratePolicy applies the policy: other orgs, allow_drop and the
// migrators list.
func TestMigratePolicy(t *testing.T) {
	tn := newTenants(t, "acme", "globex")
	// tn.config opens the policy block; these keys go on in it.
	p := startProxy(t, tn.config("  allow_drop: false\n  migrators: [postgres]\n"))
	owner := migrateConn(t, p, "postgres", "", "acme")
	mustExec(t, owner, createInvoice)

	t.Run("other org", func(t *testing.T) {
		wantExecError(t, owner, "CALL migrate.list_models(org => 'globex')", "42501")
		wantExecError(t, owner, `CALL migrate.add_field('invoice', '{"name":"note","type":"Text"}', org => 'globex')`, "42501")
		if got := queryStrings(t, owner, "CALL migrate.list_models(org => 'acme')"); !slices.Equal(got, []string{"invoice"}) {
			t.Fatalf("list_models naming the session's own org returned %q", got)
		}
	})
	t.Run("tenant commands", func(t *testing.T) {
		wantExecError(t, owner, "CALL migrate.create_tenant('initech')", "42501")
		wantExecError(t, owner, "CALL migrate.drop_tenant('globex')", "42501")
	})
	t.Run("allow_drop false", func(t *testing.T) {
		wantExecError(t, owner, "CALL migrate.drop_field('invoice', 'title')", "42501")
		wantExecError(t, owner, "CALL migrate.drop_model('invoice')", "42501")
	})
	t.Run("not a migrator", func(t *testing.T) {
		conn := migrateConn(t, p, scramUser, userPassword, "acme")
		wantExecError(t, conn, `CALL migrate.add_field('invoice', '{"name":"note","type":"Text"}')`, "42501")
		wantExecError(t, conn, `CALL migrate.create_model('receipt', '[{"name":"id","type":"Int"}]')`, "42501")
		if got, want := queryStrings(t, conn, "CALL migrate.describe('invoice')"), []string{"id", "title"}; !slices.Equal(got, want) {
			t.Fatalf("describe returned fields %q, want %q", got, want)
		}
		if got := queryStrings(t, conn, "CALL migrate.list_models()"); !slices.Equal(got, []string{"invoice"}) {
			t.Fatalf("list_models returned %q", got)
		}
	})
	direct := directConn(t, tn.db)
	wantColumns(t, direct, "acme", "invoice", "id integer", "title character varying(200)")
	wantColumns(t, direct, "globex", "invoice")
}

// TestMigrateAdminSession creates and drops a tenant from an admin session
// on the upstream's database, where commands name their org.
func TestMigrateAdminSession(t *testing.T) {
	// Roles outlive the test's database; this one must not outlive the
	// test, even when it fails before drop_tenant.
	t.Cleanup(func() { cluster.Exec(context.Background(), "postgres", "DROP ROLE IF EXISTS beta") })
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	admin := p.url("postgres", "", tn.db)
	direct := directConn(t, tn.db)
	const tenantExists = `SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = 'beta'),
  EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'beta'),
  EXISTS (SELECT FROM pgmigrate.tenants WHERE org = 'beta')`
	wantTenant := func(want bool) {
		t.Helper()
		var schema, role, registered bool
		if err := direct.QueryRow(testContext(t), tenantExists).Scan(&schema, &role, &registered); err != nil {
			t.Fatal(err)
		}
		if schema != want || role != want || registered != want {
			t.Fatalf("tenant beta: schema %v, role %v, registered %v; want all %v", schema, role, registered, want)
		}
	}

	// The schema, the tenant role and what lets the role use the tables the
	// engine will make there. After duration_ms come login and password,
	// NULL without login => true.
	tenantSQL := `CREATE SCHEMA "beta";` + "\n" +
		`CREATE ROLE "beta" NOLOGIN;` + "\n" +
		`GRANT USAGE, CREATE ON SCHEMA "beta" TO "beta";` + "\n" +
		`ALTER DEFAULT PRIVILEGES IN SCHEMA "beta" GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES ON TABLES TO "beta";` + "\n" +
		`ALTER DEFAULT PRIVILEGES IN SCHEMA "beta" GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO "beta"`
	created := regexp.MustCompile(`^applied\|beta\|\|\|` + regexp.QuoteMeta(tenantSQL) + `\|1\|\d+\|\|\n$`)
	if got := psqlCalls(t, admin, "CALL migrate.create_tenant('beta')"); !created.MatchString(got) {
		t.Fatalf("create_tenant printed %q, want a match of %q", got, created)
	}
	wantTenant(true)
	create := `CALL migrate.create_model('invoice', '` + invoiceFields + `', org => 'beta')`
	want := "applied|beta|invoice||" + createModelSQL("beta", "invoice", `"id" integer PRIMARY KEY, "title" varchar(200) NOT NULL`) + "|1|ms\n"
	if got := psqlCalls(t, admin, create); got != want {
		t.Fatalf("create_model for beta printed %q, want %q", got, want)
	}
	if got := tableColumns(t, direct, "beta", "invoice"); len(got) != 2 {
		t.Fatalf("beta.invoice has columns %q", got)
	}

	conn := migrateConn(t, p, "postgres", "", tn.db)
	wantExecError(t, conn, addStatus, "42601")
	wantExecError(t, conn, "CALL migrate.list_models()", "42601")
	if got := queryStrings(t, conn, "CALL migrate.list_models(org => 'beta')"); !slices.Equal(got, []string{"invoice"}) {
		t.Fatalf("list_models for beta returned %q", got)
	}

	if got, want := psqlCalls(t, admin, "CALL migrate.drop_tenant('beta')"), "applied|beta|||DROP SCHEMA \"beta\" CASCADE;\nDROP ROLE \"beta\"|1|ms\n"; got != want {
		t.Fatalf("drop_tenant printed %q, want %q", got, want)
	}
	wantTenant(false)
}

// describedField is a row of migrate.describe.
type describedField struct {
	Field      string  `db:"field"`
	Type       string  `db:"type"`
	Nullable   bool    `db:"nullable"`
	Unique     bool    `db:"unique"`
	Default    *string `db:"default"`
	References *string `db:"references"`
	PrimaryKey bool    `db:"primary_key"`
}

func TestMigratePgxDescribe(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	conn := migrateConn(t, p, "postgres", "", "acme")
	ctx := testContext(t)
	mustExec(t, conn, `CALL migrate.create_model('customer', '[{"name":"id","type":"Int"}]')`)
	mustExec(t, conn, `CALL migrate.create_model('invoice', '[
		{"name":"id","type":"Int"},
		{"name":"customer_id","type":"Int","references":{"table":"customer","column":"id","onDelete":"CASCADE"}},
		{"name":"total","type":"Float","nullable":false,"default":0},
		{"name":"note","type":"Text","unique":true}
	]')`)

	rows, err := conn.Query(ctx, "CALL migrate.describe('invoice')")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[describedField])
	if err != nil {
		t.Fatal(err)
	}
	ref, zero := "customer(id) ON DELETE CASCADE", "0"
	want := []describedField{
		{Field: "id", Type: "integer", PrimaryKey: true},
		{Field: "customer_id", Type: "integer", Nullable: true, References: &ref},
		{Field: "total", Type: "double precision", Default: &zero},
		{Field: "note", Type: "text", Nullable: true, Unique: true},
	}
	if len(got) != len(want) {
		t.Fatalf("describe returned %d rows, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if !equalDescribed(got[i], want[i]) {
			t.Fatalf("row %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	wantExecError(t, conn, "CALL migrate.describe('receipt')", "42P01")
	mustWork(t, conn)
}

func equalDescribed(a, b describedField) bool {
	eq := func(x, y *string) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.Field == b.Field && a.Type == b.Type && a.Nullable == b.Nullable && a.Unique == b.Unique &&
		a.PrimaryKey == b.PrimaryKey && eq(a.Default, b.Default) && eq(a.References, b.References)
}

// TestMigratePgxBatch queues a migrate command between ordinary queries in
// a pgx batch with the simple protocol. pgx sends such a batch as one
// Query of several statements, so the command is refused and nothing in the
// batch runs.
func TestMigratePgxBatch(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	conn := migrateConn(t, p, "postgres", "", "acme")
	batch := &pgx.Batch{}
	batch.Queue("CREATE TABLE marker (id int)")
	batch.Queue(createInvoice)
	batch.Queue("SELECT 2")
	results := conn.SendBatch(testContext(t), batch)
	_, err := results.Exec()
	wantPgError(t, err, "0A000")
	if err := results.Close(); sqlState(err) != "0A000" {
		t.Fatalf("closing the batch: %v, want SQLSTATE 0A000", err)
	}
	mustWork(t, conn)
	direct := directConn(t, tn.db)
	wantColumns(t, direct, "acme", "marker")
	wantColumns(t, direct, "acme", "invoice")
}

// TestMigratePipelinedQueries sends ordinary queries and migrate commands
// as separate Query messages in one write: the answers come in order, and
// each command sees what the queries before it did.
func TestMigratePipelinedQueries(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	c := dialRaw(t, p.addr)
	c.login("postgres", "acme")
	var out []byte
	for _, sql := range []string{
		"CREATE TABLE invoice (id int PRIMARY KEY)",
		"CALL migrate.verify()",
		"SELECT 1 / 0",
		"CALL migrate.list_models()",
		"BEGIN",
		"CALL migrate.list_models()",
		"COMMIT",
		"SELECT 'after'",
	} {
		var err error
		if out, err = (&pgproto3.Query{String: sql}).Encode(out); err != nil {
			t.Fatal(err)
		}
	}
	c.write(out)

	checks := []struct {
		what string
		ok   func(r response) bool
	}{
		{"CREATE TABLE", func(r response) bool { return slices.Equal(r.tags, []string{"CREATE TABLE"}) }},
		{"verify finding the new table", func(r response) bool {
			return len(r.rows) == 1 && len(r.rows[0]) == 4 && slices.Equal(r.rows[0][:3], []string{"invoice", "", "missing in metadata"}) &&
				slices.Equal(r.tags, []string{"CALL"}) && r.status == 'I'
		}},
		{"division by zero", func(r response) bool { return r.code == "22012" && r.status == 'I' }},
		{"list_models without rows", func(r response) bool {
			return len(r.rows) == 0 && slices.Equal(r.tags, []string{"CALL"}) && r.code == ""
		}},
		{"BEGIN", func(r response) bool { return r.status == 'T' }},
		// As a failing statement does, the refusal fails the transaction,
		// which COMMIT then rolls back.
		{"25001 in the transaction", func(r response) bool { return r.code == "25001" && r.status == 'E' }},
		{"COMMIT rolling back", func(r response) bool { return slices.Equal(r.tags, []string{"ROLLBACK"}) && r.status == 'I' }},
		{"the last SELECT", func(r response) bool { return len(r.rows) == 1 && slices.Equal(r.rows[0], []string{"after"}) }},
	}
	for _, ch := range checks {
		if r := c.response(); !ch.ok(r) {
			t.Fatalf("want %s, got %+v (status %q)", ch.what, r, r.status)
		}
	}
}

func TestMigrateLibPQ(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	db := openPQ(t, p.url("postgres", "", "acme"))
	ctx := testContext(t)
	for _, sql := range []string{createInvoice, `CALL migrate.create_model('customer', '[{"name":"id","type":"Int"}]')`} {
		if _, err := db.ExecContext(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	rows, err := db.QueryContext(ctx, "CALL migrate.list_models()")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var models []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			t.Fatal(err)
		}
		models = append(models, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"customer", "invoice"}; !slices.Equal(models, want) {
		t.Fatalf("list_models returned %q, want %q", models, want)
	}

	var status, org, model string
	var attempts int
	err = db.QueryRowContext(ctx, createInvoice).Scan(&status, &org, &model, new(string), new(string), &attempts, new(int64))
	if err != nil {
		t.Fatal(err)
	}
	if status != "unchanged" || org != "acme" || model != "invoice" {
		t.Fatalf("create_model again returned %s, %s, %s", status, org, model)
	}

	_, err = db.ExecContext(ctx, `CALL migrate.add_field('receipt', '{"name":"total","type":"Int"}')`)
	var pqErr *pq.Error
	if !errors.As(err, &pqErr) || pqErr.Code != "42P01" {
		t.Fatalf("add_field to an unknown model: %v, want SQLSTATE 42P01", err)
	}
}

// historyEntry is a row of migrate.history.
type historyEntry struct {
	ID         int64     `db:"id"`
	Model      string    `db:"model"`
	Field      string    `db:"field"`
	Operation  string    `db:"operation"`
	Statements string    `db:"statements"`
	Attempts   int32     `db:"attempts"`
	DurationMS int64     `db:"duration_ms"`
	AppliedBy  string    `db:"applied_by"`
	AppliedAt  time.Time `db:"applied_at"`
}

// TestMigrateHistoryAndVerify lists the applied changes in order and finds
// a column added behind the engine's back.
func TestMigrateHistoryAndVerify(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	conn := migrateConn(t, p, "postgres", "", "acme")
	for _, sql := range []string{
		createInvoice,
		addStatus,
		`CALL migrate.create_model('customer', '[{"name":"id","type":"Int"}]')`,
		`CALL migrate.rename_field('invoice', 'status', 'state')`,
		addStatus, // status is free again after the rename
		`CALL migrate.drop_field('invoice', 'state')`,
		addStatus, // unchanged: no history
	} {
		mustExec(t, conn, sql)
	}

	history := func(call string) []historyEntry {
		t.Helper()
		rows, err := conn.Query(testContext(t), call)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := pgx.CollectRows(rows, pgx.RowToStructByName[historyEntry])
		if err != nil {
			t.Fatalf("%s: %v", call, err)
		}
		return entries
	}
	type change struct{ model, field, operation, statement, appliedBy string }
	all := []change{
		// The proxy provisioned acme when it started: the harness made the
		// schema and the tenant role, not the grants.
		{"", "", "create_tenant", `GRANT USAGE, CREATE ON SCHEMA "acme" TO "acme";` + "\n" +
			`ALTER DEFAULT PRIVILEGES IN SCHEMA "acme" GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES ON TABLES TO "acme";` + "\n" +
			`ALTER DEFAULT PRIVILEGES IN SCHEMA "acme" GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO "acme"`, "pgmigrate-proxy"},
		{"invoice", "", "create_model", createInvoiceSQL, "postgres"},
		{"invoice", "status", "add_field", `ALTER TABLE "acme"."invoice" ADD COLUMN "status" varchar(100) DEFAULT 'draft'`, "postgres"},
		{"customer", "", "create_model", createModelSQL("acme", "customer", `"id" integer PRIMARY KEY`), "postgres"},
		{"invoice", "status", "rename_field", `ALTER TABLE "acme"."invoice" RENAME COLUMN "status" TO "state"`, "postgres"},
		{"invoice", "status", "add_field", `ALTER TABLE "acme"."invoice" ADD COLUMN "status" varchar(100) DEFAULT 'draft'`, "postgres"},
		{"invoice", "state", "drop_field", `ALTER TABLE "acme"."invoice" DROP COLUMN "state"`, "postgres"},
	}
	check := func(call string, want []change) {
		t.Helper()
		got := history(call)
		if len(got) != len(want) {
			t.Fatalf("%s returned %d entries, want %d: %+v", call, len(got), len(want), got)
		}
		for i, w := range want {
			g := got[i]
			if (change{g.Model, g.Field, g.Operation, g.Statements, g.AppliedBy}) != w {
				t.Fatalf("%s entry %d: got %+v, want %+v", call, i, g, w)
			}
			if i > 0 && g.ID <= got[i-1].ID {
				t.Fatalf("%s: entry %d has id %d after %d", call, i, g.ID, got[i-1].ID)
			}
			if g.Attempts != 1 || g.AppliedAt.IsZero() {
				t.Fatalf("%s entry %d: %+v", call, i, g)
			}
		}
	}
	check("CALL migrate.history()", all)
	check("CALL migrate.history('invoice')", slices.DeleteFunc(slices.Clone(all), func(c change) bool { return c.model != "invoice" }))
	check("CALL migrate.history(model => 'customer')", all[3:4])

	if rows := queryStrings(t, conn, "CALL migrate.verify()"); len(rows) > 0 {
		t.Fatalf("verify found drift in models %q", rows)
	}
	direct := directConn(t, tn.db)
	if _, err := direct.Exec(testContext(t), "ALTER TABLE acme.invoice ADD COLUMN x int"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(testContext(t), "CALL migrate.verify()")
	if err != nil {
		t.Fatal(err)
	}
	drifts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([4]string, error) {
		var d [4]string
		err := r.Scan(&d[0], &d[1], &d[2], &d[3])
		return d, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(drifts) != 1 || drifts[0][0] != "invoice" || drifts[0][1] != "x" || drifts[0][2] != "missing in metadata" {
		t.Fatalf("verify after ALTER TABLE ADD COLUMN x returned %q", drifts)
	}
}
