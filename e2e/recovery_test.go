package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestSIGTERMLeavesRecoverableIntent stops the proxy with SIGTERM while a
// migration waits past the drain timeout (a CREATE INDEX CONCURRENTLY
// held up by a transaction's snapshot): the process exits, leaving the
// migration's intent, which the sweep of the next start completes.
func TestSIGTERMLeavesRecoverableIntent(t *testing.T) {
	tn := newTenants(t, "acme")
	s := newSoakProxy(t, tn.config("drain_timeout: 200ms\nengine:\n  lock_timeout: 60s\n"))
	ctx := testContext(t)
	url := s.url("acme")
	mustApply(t, ctx, url, `CALL migrate.create_model('item', '[{"name":"id","type":"Int"},{"name":"name","type":"String"}]')`)
	if err := cluster.Exec(ctx, tn.db, `INSERT INTO acme.item SELECT g, 'n' || g FROM generate_series(1, 1000) g`); err != nil {
		t.Fatal(err)
	}
	watch := directConn(t, tn.db)
	blocker, err := directConn(t, tn.db).BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := blocker.Exec(ctx, "SELECT count(*) FROM acme.item"); err != nil {
		t.Fatal(err)
	}
	alter := `CALL migrate.alter_field('item', '{"name":"name","type":"String","unique":true}')`
	answered := make(chan error, 1)
	go func() {
		_, err := soakQuery(ctx, url, alter)
		answered <- err
	}()
	waitTrue(t, watch, "CREATE INDEX CONCURRENTLY running",
		`SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE 'CREATE UNIQUE INDEX CONCURRENTLY%' AND datname = current_database()`)
	s.proc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.proc.done:
	case <-ctx.Done():
		t.Fatal("the proxy did not exit after SIGTERM")
	}
	if err := <-answered; err == nil {
		t.Error("the interrupted command answered without an error")
	}
	if n := queryValue[int](t, watch, "SELECT count(*) FROM pgmigrate.intents"); n != 1 {
		t.Fatalf("%d intents after SIGTERM, want 1", n)
	}
	if err := blocker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	waitTrue(t, watch, "the sweep at start to recover the intent", "SELECT NOT EXISTS (SELECT FROM pgmigrate.intents)")
	if n := queryValue[int](t, watch, `SELECT count(*) FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
WHERE t.oid = 'acme.item'::regclass AND c.contype = 'u'`); n != 1 {
		t.Errorf("%d unique constraints on acme.item, want 1", n)
	}
	if status := mustApply(t, ctx, url, alter); status != "unchanged" {
		t.Errorf("re-run: %s, want unchanged", status)
	}
	checkTenantClean(t, ctx, watch, s.url("acme"), "acme")
}

// TestFanOutConvergesAfterRestart crashes PostgreSQL (immediate shutdown)
// while org => '*' adds a unique field to a dozen tenants with rows, then
// runs the same command again: every tenant ends applied or unchanged, and
// none is left with an invalid index, a NOT VALID constraint or an intent.
func TestFanOutConvergesAfterRestart(t *testing.T) {
	var orgs []string
	for i := 1; i <= 12; i++ {
		orgs = append(orgs, fmt.Sprintf("fan%02d", i))
	}
	tn := newTenants(t, orgs...)
	p := startProxy(t, tn.config(""))
	ctx := testContext(t)
	admin := p.url("postgres", "", tn.db)
	if _, codes, _ := psqlScript(t, admin, `CALL migrate.create_model('item', '[{"name":"id","type":"Int"}]', org => '*');`); len(codes) > 0 {
		t.Fatalf("create_model: %v", codes)
	}
	var fill strings.Builder
	for _, org := range orgs {
		fmt.Fprintf(&fill, "INSERT INTO %s.item SELECT g FROM generate_series(1, 20000) g;", org)
	}
	if err := cluster.Exec(ctx, tn.db, fill.String()); err != nil {
		t.Fatal(err)
	}
	add := `CALL migrate.add_field('item', '{"name":"code","type":"Int","unique":true}', org => '*')`
	simple := p.url("postgres", "", tn.db, "default_query_exec_mode", "simple_protocol")
	done := make(chan struct{})
	go func() {
		defer close(done)
		soakQuery(ctx, simple, add)
	}()
	watch := directConn(t, tn.db)
	waitTrue(t, watch, "a tenant's add_field to be half-way", `SELECT EXISTS (SELECT FROM pgmigrate.intents)`)
	restart := takeClusterDown(t, cluster.Kill)
	restart()
	<-done
	rows, err := soakQuery(ctx, simple, add)
	if err != nil {
		t.Fatalf("re-run: %v", err)
	}
	statuses := map[string]int{}
	for _, row := range rows {
		statuses[row[0]]++
	}
	if len(rows) != len(orgs) || statuses["applied"]+statuses["unchanged"] != len(orgs) {
		t.Errorf("re-run statuses %v, want %d tenants applied or unchanged: %q", statuses, len(orgs), rows)
	}
	watch = directConn(t, tn.db)
	for _, org := range orgs {
		checkTenantClean(t, ctx, watch, p.url("postgres", "", tn.db), org)
	}
	if n := queryValue[int](t, watch, `SELECT count(*) FROM pg_constraint WHERE contype = 'u' AND conname = 'item_code_key'`); n != len(orgs) {
		t.Errorf("%d tenants have the unique constraint, want %d", n, len(orgs))
	}
}

// mustApply runs a mutating command through url and returns its status,
// applied or unchanged.
func mustApply(t testing.TB, ctx context.Context, url, sql string) string {
	t.Helper()
	status, err := soakStatus(soakQuery(ctx, url, sql))
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return status
}

// waitTrue waits until a query of one boolean answers true, for what.
func waitTrue(t testing.TB, conn *pgx.Conn, what, sql string) {
	t.Helper()
	waitFor(t, what, func() bool { return queryValue[bool](t, conn, sql) })
}

// checkTenantClean checks that org's schema has no invalid index, no NOT
// VALID constraint and no intent, and that verify(), run through url
// (as org's session, or an admin one naming the org), finds nothing.
func checkTenantClean(t testing.TB, ctx context.Context, direct *pgx.Conn, url, org string) {
	t.Helper()
	if n := queryValue[int](t, direct, fmt.Sprintf(`SELECT
	(SELECT count(*) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
	 WHERE i.relnamespace = '%[1]s'::regnamespace AND NOT x.indisvalid)
	+ (SELECT count(*) FROM pg_constraint WHERE connamespace = '%[1]s'::regnamespace AND NOT convalidated)
	+ (SELECT count(*) FROM pgmigrate.intents WHERE org = '%[1]s')`, org)); n != 0 {
		t.Errorf("%s: %d invalid indexes, NOT VALID constraints and intents", org, n)
	}
	rows, err := soakQuery(ctx, url, fmt.Sprintf("CALL migrate.verify(org => '%s')", org))
	if err != nil || len(rows) > 0 {
		t.Errorf("%s: verify: %q, %v", org, rows, err)
	}
}
