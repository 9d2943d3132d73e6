package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// registryConfig is the config of a proxy serving the catalog's tenants of
// db (none listed), with the registry's refresh and miss TTL.
func registryConfig(db, refresh, missTTL string) string {
	return fmt.Sprintf("upstreams:\n  - name: main\n    dsn: %s\npolicy:\n  admins: [postgres]\nregistry:\n  refresh: %s\n  miss_ttl: %s\n",
		cluster.DSN("postgres", db), refresh, missTTL)
}

// createTenant makes org through p's admin session on db, with a login
// role, and returns the login's name and password.
func createTenant(t testing.TB, p *proxyProc, db, org string) (string, string) {
	t.Helper()
	admin := p.connect(t, "postgres", "", db)
	var status string
	var login, password *string
	if err := admin.QueryRow(testContext(t), "CALL migrate.create_tenant("+authLiteral(org)+", login => true)").
		Scan(&status, nil, nil, nil, nil, nil, nil, &login, &password); err != nil {
		t.Fatalf("create_tenant(%s): %v", org, err)
	}
	if status != "applied" || login == nil || password == nil {
		t.Fatalf("create_tenant(%s): status %s, login %v", org, status, login)
	}
	return *login, *password
}

// eventually connects through p as user to database until it succeeds
// (see waitFor), and returns the connection.
func eventually(t testing.TB, p *proxyProc, user, password, database string) *pgx.Conn {
	t.Helper()
	var conn *pgx.Conn
	waitFor(t, database+" served through the proxy", func() bool {
		var err error
		conn, err = tryConnect(t, p, user, password, database)
		return err == nil
	})
	return conn
}

// TestRegistryAcrossProxies: an org made by create_tenant through one
// proxy is routable through another that had just answered it 3D000 (and
// remembers that for an hour): the catalog's notification tells it. An
// org dropped through the second ends the first's sessions of it, with
// 57P01.
func TestRegistryAcrossProxies(t *testing.T) {
	db := newTenants(t).db
	config := registryConfig(db, "1h", "1h")
	a, b := startProxy(t, config), startProxy(t, config)
	const org = "reg-newco"
	_, err := pgx.Connect(testContext(t), b.url("postgres", "", org))
	wantFatal(t, err, "3D000", "an org not made yet")

	login, password := createTenant(t, a, db, org)
	onB := eventually(t, b, login, password, org)
	if got := queryValue[string](t, onB, "SELECT current_user"); got != org {
		t.Errorf("current_user through the second proxy = %s, want %s", got, org)
	}

	onA := a.connect(t, login, password, org)
	admin := b.connect(t, "postgres", "", db)
	var status string
	if err := admin.QueryRow(testContext(t), "CALL migrate.drop_tenant("+authLiteral(org)+")").Scan(&status, nil, nil, nil, nil, nil, nil); err != nil {
		t.Fatalf("drop_tenant: %v", err)
	}
	var ended error
	waitFor(t, "the first proxy's session of the dropped org to end", func() bool {
		_, ended = onA.Exec(testContext(t), "SELECT 1")
		return ended != nil
	})
	wantFatal(t, ended, "57P01", "a session of a dropped org")
	if !strings.Contains(ended.Error(), "was dropped") {
		t.Errorf("the session's end says %q, want the tenant dropped", ended)
	}
	_, err = pgx.Connect(testContext(t), a.url(login, password, org))
	wantFatal(t, err, "3D000", "a dropped org")
}

// TestRegistryListenerKilled: with its listening connection terminated,
// a proxy still sees an org made while it reconnects, from the reload of
// its reconnection: its refresh is an hour away, it reconnects a second
// after losing the connection, and create_tenant's notification goes out
// long before that, while nobody listens.
func TestRegistryListenerKilled(t *testing.T) {
	db := newTenants(t).db
	config := registryConfig(db, "1h", "1h")
	a, b := startProxy(t, config), startProxy(t, config)
	const org = "reg-gap"
	_, err := pgx.Connect(testContext(t), b.url("postgres", "", org))
	wantFatal(t, err, "3D000", "an org not made yet")
	su := directConn(t, db)
	if n := queryValue[int](t, su, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE application_name = 'pgmigrate-proxy registry listener'`); n != 2 {
		t.Fatalf("%d listeners terminated, want the two proxies'", n)
	}
	login, password := createTenant(t, a, db, org)
	eventually(t, b, login, password, org)
}

// TestRegistryNotificationFlood: any session may notify on the catalog's
// channel. A tenant's flood of notifications neither holds up a real one
// nor keeps the whole reload from running every registry.refresh.
func TestRegistryNotificationFlood(t *testing.T) {
	db := newTenants(t).db
	a := startProxy(t, registryConfig(db, "1h", "1h"))
	b := startProxy(t, registryConfig(db, "2s", "1h"))
	login, password := createTenant(t, a, db, "reg-flooder")
	hostile := eventually(t, b, login, password, "reg-flooder")
	mustExec(t, hostile, "SELECT pg_notify('pgmigrate', 'reg-fake-' || g) FROM generate_series(1, 20000) g")
	madeLogin, madePassword := createTenant(t, a, db, "reg-heard")
	eventually(t, b, madeLogin, madePassword, "reg-heard")

	// A registration whose notification is lost (known unknown for an
	// hour) is found by the reload, though notifications keep coming more
	// often than the refresh.
	_, err := pgx.Connect(testContext(t), b.url("postgres", "", "reg-quiet"))
	wantFatal(t, err, "3D000", "a registration not made yet")
	mustExec(t, directConn(t, db), "INSERT INTO pgmigrate.tenants (org, schema) VALUES ('reg-quiet', 'reg-quiet')")
	deadline := time.Now().Add(10 * time.Second)
	for {
		mustExec(t, hostile, "NOTIFY pgmigrate, 'reg-fake'")
		if metrics(t, b)[`pgmigrate_registry_tenants{upstream="main"}`] == 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the reload did not run under a stream of notifications")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestRegistryUnknownFlood: 10,000 attempts at an org that does not exist
// cost the catalog one query per miss TTL.
func TestRegistryUnknownFlood(t *testing.T) {
	db := newTenants(t).db
	p := startProxy(t, registryConfig(db, "1h", "1h"))
	var wg sync.WaitGroup
	attempts := make(chan int, 10000)
	for i := range 10000 {
		attempts <- i
	}
	close(attempts)
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for range attempts {
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				conn, err := pgx.Connect(ctx, p.url("postgres", "", "reg-nobody"))
				cancel()
				if err == nil {
					conn.Close(context.Background())
					errs <- fmt.Errorf("an unknown org was served")
					return
				}
				if !strings.Contains(err.Error(), "3D000") {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	m := metrics(t, p)
	if q := m["pgmigrate_registry_catalog_queries_total"]; q != 1 {
		t.Errorf("%v catalog queries for 10,000 attempts at one unknown org, want 1", q)
	}
	if u := m["pgmigrate_registry_unknown_total"]; u < 10000 {
		t.Errorf("%v lookups answered unknown, want 10,000", u)
	}
}

// TestRegistryFanOutOverUpstreams: create_tenant places tenants on the
// upstream named, or the one with the fewest; org => '*' changes the
// tenants of both upstreams, and a re-run changes nothing.
func TestRegistryFanOutOverUpstreams(t *testing.T) {
	dbA, dbB := newTenants(t).db, newTenants(t).db
	p := startProxy(t, fmt.Sprintf("upstreams:\n  - name: a\n    dsn: %s\n  - name: b\n    dsn: %s\npolicy:\n  admins: [postgres]\n",
		cluster.DSN("postgres", dbA), cluster.DSN("postgres", dbB)))
	admin := p.connect(t, "postgres", "", dbA)
	for _, call := range []string{
		"CALL migrate.create_tenant('reg-one', upstream => 'b')",
		"CALL migrate.create_tenant('reg-two')", // a has fewer
		"CALL migrate.create_tenant('reg-three')",
	} {
		mustExec(t, admin, call)
	}
	where := map[string]string{}
	for _, db := range []string{dbA, dbB} {
		rows, err := directConn(t, db).Query(testContext(t), "SELECT org FROM pgmigrate.tenants")
		if err != nil {
			t.Fatal(err)
		}
		orgs, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range orgs {
			where[o] = db
		}
	}
	if where["reg-one"] != dbB || where["reg-two"] != dbA || where["reg-three"] == "" {
		t.Fatalf("tenants placed %v (a = %s, b = %s)", where, dbA, dbB)
	}
	for sql, code := range map[string]string{
		"CALL migrate.create_tenant('reg-one', upstream => 'a')":     "42710", // it is on b
		"CALL migrate.create_tenant('reg-four', upstream => 'nope')": "42704",
		"CALL migrate.create_tenant(" + authLiteral(dbB) + ")":       "42P04", // b's database, where admins connect
	} {
		wantProxyError(t, execErr(t, admin, sql), code, sql)
	}
	var again string
	if err := admin.QueryRow(testContext(t), "CALL migrate.create_tenant('reg-one')").Scan(&again, nil, nil, nil, nil, nil, nil, nil, nil); err != nil || again != "unchanged" {
		t.Fatalf("create_tenant of a tenant of b, upstream unnamed: %s (%v), want unchanged", again, err)
	}
	mustExec(t, admin, "CALL migrate.create_model('invoice', '[{\"name\":\"id\",\"type\":\"Int\"}]', org => '*')")
	rows, err := admin.Query(testContext(t), "CALL migrate.add_field('invoice', '{\"name\":\"title\",\"type\":\"String\"}', org => '*')")
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]string{}
	for rows.Next() {
		var status, org string
		if err := rows.Scan(&status, &org, nil, nil, nil, nil, nil); err != nil {
			t.Fatal(err)
		}
		statuses[org] = status
	}
	if rows.Err() != nil || len(statuses) != 3 || statuses["reg-one"] != "applied" || statuses["reg-two"] != "applied" {
		t.Fatalf("add_field over both upstreams: %v (%v)", statuses, rows.Err())
	}
	var status string
	if err := admin.QueryRow(testContext(t), "CALL migrate.add_field('invoice', '{\"name\":\"title\",\"type\":\"String\"}', org => 'reg-one')").
		Scan(&status, nil, nil, nil, nil, nil, nil); err != nil || status != "unchanged" {
		t.Fatalf("the re-run: %s (%v), want unchanged", status, err)
	}
	wantColumns(t, directConn(t, dbB), "reg-one", "invoice", "id integer", "title character varying(100)")

	rows, err = admin.Query(testContext(t), "CALL migrate.list_tenants()")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for rows.Next() {
		var org, upstream, database, schema string
		var models, unfinished, drift int
		var last time.Time
		if err := rows.Scan(&org, &upstream, &database, &schema, &models, &last, &unfinished, &drift); err != nil {
			t.Fatal(err)
		}
		listed = append(listed, fmt.Sprintf("%s %s %s %s %d %d %d", org, upstream, database, schema, models, unfinished, drift))
		if time.Since(last) > time.Minute {
			t.Errorf("%s: last change %v", org, last)
		}
	}
	threeOn := map[string]string{dbA: "a", dbB: "b"}[where["reg-three"]]
	want := []string{
		fmt.Sprintf("reg-one b %s reg-one 1 0 0", dbB),
		fmt.Sprintf("reg-three %s %s reg-three 1 0 0", threeOn, where["reg-three"]),
		fmt.Sprintf("reg-two a %s reg-two 1 0 0", dbA),
	}
	if rows.Err() != nil || strings.Join(listed, "\n") != strings.Join(want, "\n") {
		t.Errorf("list_tenants (%v):\n%s\nwant\n%s", rows.Err(), strings.Join(listed, "\n"), strings.Join(want, "\n"))
	}
}

// TestRegistryUpstreamFlagAlone: a proxy given only --upstream serves the
// tenants of that upstream's catalog.
func TestRegistryUpstreamFlagAlone(t *testing.T) {
	db := newTenants(t).db
	dsn := cluster.DSN("postgres", db)
	first := startProxy(t, "drain_timeout: 100ms\npolicy:\n  admins: [postgres]\n", "--upstream", dsn)
	login, password := createTenant(t, first, db, "reg-flag")
	first.stop()
	second := startProxy(t, "policy:\n  admins: [postgres]\n", "--upstream", dsn)
	conn := second.connect(t, login, password, "reg-flag")
	if got := queryValue[string](t, conn, "SELECT current_schema()"); got != "reg-flag" {
		t.Errorf("current_schema = %s, want reg-flag", got)
	}
}

// TestRegistryConfigConflict: a config tenant that an upstream's catalog
// places elsewhere stops the proxy at start, naming both.
func TestRegistryConfigConflict(t *testing.T) {
	tn := newTenants(t, "reg-clash")
	p := startProxy(t, tn.config(""))
	p.stop()
	mustExec(t, directConn(t, tn.db), "UPDATE pgmigrate.tenants SET schema = 'elsewhere' WHERE org = 'reg-clash'")
	config := filepath.Join(t.TempDir(), "pgmigrate.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf("listen: %s\nadmin_listen: ''\n%s", freeAddr(t), tn.config(""))), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, proxyBin, "--config", config).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `schema "reg-clash" by the config file but in upstream "main", database "`+tn.db+`", schema "elsewhere"`) {
		t.Fatalf("start with a conflicting catalog: %v\n%s", err, out)
	}
}

// TestRegistryConfigAndCatalog: a proxy routes the config file's tenants
// and its upstream catalog's together, and org => '*' covers both.
func TestRegistryConfigAndCatalog(t *testing.T) {
	tn := newTenants(t, "reg-filed")
	p := startProxy(t, tn.config(""))
	login, password := createTenant(t, p, tn.db, "reg-made")
	p.connect(t, login, password, "reg-made")
	p.connect(t, scramUser, userPassword, "reg-filed")
	admin := p.connect(t, "postgres", "", tn.db)
	rows, err := admin.Query(testContext(t), `CALL migrate.create_model('invoice', '[{"name":"id","type":"Int"}]', org => '*')`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var status, org string
		if err := rows.Scan(&status, &org, nil, nil, nil, nil, nil); err != nil {
			t.Fatal(err)
		}
		got = append(got, org+" "+status)
	}
	if rows.Err() != nil || strings.Join(got, ", ") != "reg-filed applied, reg-made applied" {
		t.Fatalf("org => '*': %q (%v), want the config's tenant, then the catalog's", got, rows.Err())
	}
}

// TestRegistryUpstreamRestart: after PostgreSQL is killed and started
// again, a proxy's registry listens again: an org made then, which it had
// answered 3D000 (and would remember that for an hour), is served.
func TestRegistryUpstreamRestart(t *testing.T) {
	db := newTenants(t).db
	config := registryConfig(db, "1h", "1h")
	a, b := startProxy(t, config), startProxy(t, config)
	restart := takeClusterDown(t, cluster.Kill)
	restart()
	const org = "reg-restarted"
	waitFor(t, "the second proxy to answer from its catalog again", func() bool {
		_, err := pgx.Connect(testContext(t), b.url("postgres", "", org))
		return sqlState(err) == "3D000"
	})
	login, password := createTenant(t, a, db, org)
	eventually(t, b, login, password, org)
}
