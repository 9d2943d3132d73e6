package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The deployment of the authority tests: a database owned by an engine
// role that is not a superuser, two tenants provisioned by the proxy, and
// login roles as a real deployment has them. Roles are cluster-wide, so
// their names are the tests' own and each test drops them when it ends.
const (
	authEngine    = "authz_engine"      // owns the database; CREATEROLE, not a superuser
	authAcme      = "authz-acme"        // an org, and its tenant role
	authGlobex    = "authz-globex"      // another org
	authAcmeApp   = "authz_acme_app"    // login role, member of acme's role only
	authGlobexApp = "authz_globex_app"  // login role, member of globex's role only
	authShared    = "authz_shared"      // NOINHERIT login role, member of both tenant roles
	authReader    = "authz_acme_reader" // login role, member of acme's role, no migrator
	authOutsider  = "authz_outsider"    // login role, member of no tenant role
	authPassword  = "authz-S3cret pass"
)

// authRoles are the roles every authority fixture makes.
var authRoles = []string{authAcmeApp, authGlobexApp, authShared, authReader, authOutsider, authAcme, authGlobex, authEngine}

// authSetup customises an authority fixture.
type authSetup struct {
	// policy holds extra lines of the policy section (two-space indented).
	policy string
	// engine replaces the default engine section's lines.
	engine string
	// tenants holds extra YAML items of the tenants list.
	tenants string
	// before runs once the roles and the database exist, before the proxy
	// starts.
	before func(f *authority)
	// dsn rewrites the upstream DSN (to go through a forwarder, say).
	dsn func(string) string
	// acmeSchema is acme's schema in the config, if not the default.
	acmeSchema string
	// noSeed skips the models and rows made through the proxy.
	noSeed bool
}

// defaultAuthEngine keeps waits short: lock timeouts and retries are
// what the tests park commands on.
const defaultAuthEngine = `  lock_timeout: 200ms
  command_timeout: 8s
  acquire_timeout: 2s
  retry: {max_attempts: 3, delay: 50ms, max_delay: 200ms}
`

// authority is a running deployment for the authority tests.
type authority struct {
	t     testing.TB
	db    string
	setup authSetup
	p     *proxyProc
	// roles are dropped when the test ends (those that exist).
	roles []string
	su    *pgx.Conn // the superuser, straight to the database
}

// newAuthority makes the deployment and starts the proxy. acme's invoice
// (id, title) holds two rows and globex's secret (id, payload) three,
// made through the proxy by each tenant's login role, unless noSeed.
func newAuthority(t testing.TB, setup authSetup) *authority {
	t.Helper()
	if setup.engine == "" {
		setup.engine = defaultAuthEngine
	}
	f := &authority{t: t, setup: setup, roles: slices.Clone(authRoles)}
	for _, r := range authRoles {
		authExec(t, "postgres", "DROP ROLE IF EXISTS "+authIdent(r))
	}
	f.db = cluster.CreateDatabase(t)
	t.Cleanup(f.dropRoles)
	authExec(t, f.db, fmt.Sprintf(`
SET password_encryption = 'scram-sha-256';
CREATE ROLE %[1]s LOGIN CREATEROLE PASSWORD %[2]s;
ALTER DATABASE %[3]s OWNER TO %[1]s;
SET ROLE %[1]s;
CREATE ROLE %[4]s NOLOGIN;
CREATE ROLE %[5]s NOLOGIN;
RESET ROLE;
CREATE ROLE %[6]s LOGIN PASSWORD %[2]s IN ROLE %[4]s;
CREATE ROLE %[7]s LOGIN PASSWORD %[2]s IN ROLE %[5]s;
CREATE ROLE %[8]s LOGIN NOINHERIT PASSWORD %[2]s IN ROLE %[4]s, %[5]s;
CREATE ROLE %[9]s LOGIN PASSWORD %[2]s IN ROLE %[4]s;
CREATE ROLE %[10]s LOGIN PASSWORD %[2]s;
`, authEngine, authLiteral(authPassword), authIdent(f.db), authIdent(authAcme), authIdent(authGlobex),
		authAcmeApp, authGlobexApp, authShared, authReader, authOutsider))
	f.su = directConn(t, f.db)
	if setup.before != nil {
		setup.before(f)
	}
	f.p = startProxy(t, f.config())
	if !setup.noSeed {
		acme := f.conn(authAcmeApp, authAcme)
		mustExec(t, acme, createInvoice)
		mustExec(t, acme, "INSERT INTO invoice (id, title) VALUES (1, 'one'), (2, 'two')")
		globex := f.conn(authGlobexApp, authGlobex)
		mustExec(t, globex, `CALL migrate.create_model('secret', '[{"name":"id","type":"Int"},{"name":"payload","type":"Text"}]')`)
		mustExec(t, globex, "INSERT INTO secret (id, payload) VALUES (1, 'globex-1'), (2, 'globex-2'), (3, 'globex-3')")
	}
	return f
}

// engineDSN is the upstream DSN: the engine role's credentials and the
// fixture's database.
func (f *authority) engineDSN() string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(authEngine, authPassword), Host: cluster.Addr(),
		Path: "/" + f.db, RawQuery: "sslmode=disable"}
	dsn := u.String()
	if f.setup.dsn != nil {
		dsn = f.setup.dsn(dsn)
	}
	return dsn
}

// config is the proxy's configuration (without listen addresses).
func (f *authority) config() string {
	acme := "  - org: " + authAcme + "\n"
	if f.setup.acmeSchema != "" {
		acme += "    schema: " + f.setup.acmeSchema + "\n"
	}
	return fmt.Sprintf(`upstreams:
  - name: main
    dsn: %q
tenants:
%s  - org: %s
%spolicy:
  admins: [postgres]
%sengine:
%s`, f.engineDSN(), acme, authGlobex, f.setup.tenants, f.setup.policy, f.setup.engine)
}

// reload rewrites the config with policy as the extra policy lines and
// tenants as the extra tenants, sends SIGHUP and waits until the proxy
// has taken it.
func (f *authority) reload(policy, tenants string) {
	f.t.Helper()
	count := func() int { return strings.Count(f.p.logs.String(), "configuration reloaded") }
	before := count()
	f.setup.policy, f.setup.tenants = policy, tenants
	f.p.writeConfig(f.config())
	signalProxy(f.t, f.p, syscall.SIGHUP)
	waitFor(f.t, "the configuration to be reloaded", func() bool { return count() > before })
}

// dropRoles drops the fixture's roles, with what they own and the
// privileges they hold in its database, which it keeps.
func (f *authority) dropRoles() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var sql strings.Builder
	fmt.Fprintf(&sql, "ALTER DATABASE %s OWNER TO postgres;", authIdent(f.db))
	for _, r := range f.roles {
		fmt.Fprintf(&sql, `DO $$BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = %[1]s) THEN
REASSIGN OWNED BY %[2]s TO postgres; DROP OWNED BY %[2]s; DROP ROLE %[2]s; END IF; END$$;`, authLiteral(r), authIdent(r))
	}
	if err := cluster.Exec(ctx, f.db, sql.String()); err != nil {
		f.t.Errorf("dropping the roles: %v", err)
	}
}

// loginRole makes a login role with the fixture's password, a member of
// the roles given, dropped when the test ends.
func (f *authority) loginRole(name string, memberOf ...string) {
	f.t.Helper()
	f.roles = append(f.roles, name)
	authExec(f.t, "postgres", "DROP ROLE IF EXISTS "+authIdent(name))
	sql := "SET password_encryption = 'scram-sha-256'; CREATE ROLE " + authIdent(name) + " LOGIN PASSWORD " + authLiteral(authPassword)
	if len(memberOf) > 0 {
		var ids []string
		for _, r := range memberOf {
			ids = append(ids, authIdent(r))
		}
		sql += " IN ROLE " + strings.Join(ids, ", ")
	}
	authExec(f.t, f.db, sql)
}

// asEngine runs sql in database as the engine role.
func (f *authority) asEngine(database, sql string) {
	f.t.Helper()
	authExec(f.t, database, "SET ROLE "+authEngine+"; "+sql+"; RESET ROLE")
}

// conn opens a session for user through the proxy to org (a database
// name), with the fixture's password; it is closed when the test ends.
func (f *authority) conn(user, org string, params ...string) *pgx.Conn {
	f.t.Helper()
	return f.p.connect(f.t, user, authPassword, org, params...)
}

// tryConn is conn that returns why it could not connect.
func (f *authority) tryConn(user, org string, opts ...func(*pgx.ConnConfig)) (*pgx.Conn, error) {
	f.t.Helper()
	cfg := parseConfig(f.t, f.p.url(user, authPassword, org), opts...)
	conn, err := pgx.ConnectConfig(testContext(f.t), cfg)
	if err != nil {
		return nil, err
	}
	f.t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, nil
}

// pgConn opens a pgconn session for user through the proxy to org, closed
// when the test ends.
func (f *authority) pgConn(user, org string) *pgconn.PgConn {
	f.t.Helper()
	pc, err := pgconn.Connect(testContext(f.t), f.p.url(user, authPassword, org))
	if err != nil {
		f.t.Fatalf("connect as %s to %s: %v", user, org, err)
	}
	f.t.Cleanup(func() { pc.Close(context.Background()) })
	return pc
}

// admin opens an admin session: postgres on the upstream's real database.
func (f *authority) admin() *pgx.Conn {
	f.t.Helper()
	return f.p.connect(f.t, "postgres", "", f.db)
}

// state is what a hostile tenant must not change, read as the superuser:
// the schemas, tables, columns, owners and privileges, row policies,
// triggers and functions outside the system schemas, the rows of every
// table (counted) and of the metadata catalog (whole), and the role
// memberships of the fixture's roles.
func (f *authority) state() string {
	f.t.Helper()
	return authState(f.t, f.su, f.roles)
}

func authState(t testing.TB, su *pgx.Conn, roles []string) string {
	t.Helper()
	const user = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'`
	var b strings.Builder
	section := func(title, sql string, args ...any) {
		fmt.Fprintf(&b, "## %s\n", title)
		for _, line := range queryStrings(t, su, sql, args...) {
			b.WriteString(line + "\n")
		}
	}
	section("schemas", `SELECT n.nspname || ' ' || pg_get_userbyid(n.nspowner) || ' ' || coalesce(n.nspacl::text, '-')
FROM pg_namespace n WHERE `+user+` ORDER BY 1`)
	section("relations", `SELECT n.nspname || '.' || c.relname || ' ' || c.relkind::text || ' ' || pg_get_userbyid(c.relowner) || ' ' ||
       coalesce(c.relacl::text, '-') || ' rls=' || c.relrowsecurity || '/' || c.relforcerowsecurity
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE `+user+` ORDER BY 1`)
	section("columns", `SELECT n.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) ||
       ' ' || a.attnotnull || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-')
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE `+user+` AND c.relkind IN ('r', 'p', 'v') AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1`)
	section("constraints", `SELECT n.nspname || '.' || c.relname || ' ' || con.conname || ' ' || pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE `+user+` ORDER BY 1`)
	section("policies and triggers", `SELECT 'policy ' || polrelid::regclass || ' ' || polname FROM pg_policy
UNION ALL SELECT 'trigger ' || tgrelid::regclass || ' ' || tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1`)
	section("functions", `SELECT p.oid::regprocedure::text || ' ' || pg_get_userbyid(p.proowner)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE `+user+` ORDER BY 1`)
	section("memberships", `SELECT pg_get_userbyid(m.roleid) || ' > ' || pg_get_userbyid(m.member) || ' ' || m.admin_option
FROM pg_auth_members m WHERE pg_get_userbyid(m.roleid) = ANY ($1) OR pg_get_userbyid(m.member) = ANY ($1) ORDER BY 1`, roles)
	section("roles", `SELECT rolname || ' ' || rolcanlogin || ' ' || rolinherit || ' ' || rolcreaterole || ' ' || rolsuper
FROM pg_roles WHERE rolname = ANY ($1) ORDER BY 1`, roles)
	tables := queryStrings(t, su, `SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE `+user+` AND c.relkind IN ('r', 'p') ORDER BY 1`)
	b.WriteString("## rows\n")
	for _, table := range tables {
		if strings.HasPrefix(table, "pgmigrate.") {
			for _, row := range queryStrings(t, su, "SELECT t::text FROM "+table+" t ORDER BY 1") {
				fmt.Fprintf(&b, "%s %s\n", table, row)
			}
			continue
		}
		fmt.Fprintf(&b, "%s %d rows\n", table, queryValue[int64](t, su, "SELECT count(*) FROM "+table))
	}
	return b.String()
}

// wantSameState fails t (without stopping it) if the state differs from
// before, showing the lines that differ.
func (f *authority) wantSameState(before, what string) {
	f.t.Helper()
	after := f.state()
	if after == before {
		return
	}
	var removed, added []string
	bl, al := strings.Split(before, "\n"), strings.Split(after, "\n")
	for _, l := range bl {
		if !slices.Contains(al, l) {
			removed = append(removed, "- "+l)
		}
	}
	for _, l := range al {
		if !slices.Contains(bl, l) {
			added = append(added, "+ "+l)
		}
	}
	f.t.Errorf("%s changed the database:\n%s\n%s", what, strings.Join(removed, "\n"), strings.Join(added, "\n"))
}

// authExec runs sql in database as the superuser.
func authExec(t testing.TB, database, sql string) {
	t.Helper()
	if err := cluster.Exec(testContext(t), database, sql); err != nil {
		t.Fatal(err)
	}
}

func authIdent(name string) string { return pgx.Identifier{name}.Sanitize() }

func authLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Where an error comes from: PostgreSQL names the routine that raised
// it in every ErrorResponse; the proxy's own answers name none.

// wantProxyError fails t unless err is an ErrorResponse with code written
// by the proxy, not relayed from PostgreSQL.
func wantProxyError(t testing.TB, err error, code, what string) *pgconn.PgError {
	t.Helper()
	pgErr := wantCode(t, err, code, what)
	if pgErr != nil && pgErr.Routine != "" {
		t.Errorf("%s: %s (%s) came from PostgreSQL (routine %s), want the proxy's answer", what, pgErr.Code, pgErr.Message, pgErr.Routine)
	}
	return pgErr
}

// wantServerError fails t unless err is an ErrorResponse with code from
// PostgreSQL itself.
func wantServerError(t testing.TB, err error, code, what string) *pgconn.PgError {
	t.Helper()
	pgErr := wantCode(t, err, code, what)
	if pgErr != nil && pgErr.Routine == "" {
		t.Errorf("%s: %s (%s) did not come from PostgreSQL", what, pgErr.Code, pgErr.Message)
	}
	return pgErr
}

// wantCode fails t (without stopping it) unless err carries SQLSTATE code.
func wantCode(t testing.TB, err error, code, what string) *pgconn.PgError {
	t.Helper()
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		t.Errorf("%s: succeeded, want SQLSTATE %s", what, code)
		return nil
	case !errors.As(err, &pgErr):
		t.Errorf("%s: %v, want SQLSTATE %s", what, err, code)
		return nil
	case pgErr.Code != code:
		t.Errorf("%s: SQLSTATE %s (%s), want %s", what, pgErr.Code, pgErr.Message, code)
	}
	return pgErr
}

// wantFatal fails t unless err is a FATAL with code, ending a connection
// attempt.
func wantFatal(t testing.TB, err error, code, what string) *pgconn.PgError {
	t.Helper()
	pgErr := wantCode(t, err, code, what)
	if pgErr != nil && pgErr.Severity != "FATAL" {
		t.Errorf("%s: severity %s, want FATAL", what, pgErr.Severity)
	}
	return pgErr
}

// execErr runs sql on conn (simple protocol, as pgx sends a query without
// arguments) and returns its error.
func execErr(t testing.TB, conn *pgx.Conn, sql string) error {
	t.Helper()
	_, err := conn.Exec(testContext(t), sql)
	return err
}

// parseErr sends sql as a Parse (with Describe and Sync) and returns the
// error.
func parseErr(t testing.TB, conn *pgx.Conn, sql string) error {
	t.Helper()
	_, err := conn.PgConn().Prepare(testContext(t), "", sql, nil)
	return err
}

// backends counts the backends of user in the cluster, in the states
// given (any state if none).
func backends(t testing.TB, su *pgx.Conn, user string, states ...string) int {
	t.Helper()
	if len(states) == 0 {
		return queryValue[int](t, su, "SELECT count(*)::int FROM pg_stat_activity WHERE usename = $1", user)
	}
	return queryValue[int](t, su, "SELECT count(*)::int FROM pg_stat_activity WHERE usename = $1 AND state = ANY ($2)", user, states)
}

// lockWaiters counts the engine role's backends waiting for a lock.
func lockWaiters(t testing.TB, su *pgx.Conn) int {
	t.Helper()
	return queryValue[int](t, su, "SELECT count(*)::int FROM pg_stat_activity WHERE usename = $1 AND wait_event_type = 'Lock'", authEngine)
}

// authGet fetches path from the proxy's admin listener, waiting for the
// listener to come up.
func authGet(t testing.TB, p *proxyProc, path string) int {
	t.Helper()
	client := &http.Client{Timeout: timeout}
	var code int
	waitFor(t, "GET "+path, func() bool {
		resp, err := client.Get("http://" + p.admin + path)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		code = resp.StatusCode
		return true
	})
	return code
}

// logLines returns the proxy's log lines that contain every one of texts.
func logLines(p *proxyProc, texts ...string) []string {
	var out []string
	for line := range strings.Lines(p.logs.String()) {
		ok := true
		for _, s := range texts {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

// connCounter relays TCP connections to a target and counts them, to tell
// whether the proxy contacted the upstream at all.
type connCounter struct {
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
}

func newConnCounter(t testing.TB, target string) *connCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &connCounter{ln: ln}
	var mu sync.Mutex
	var conns []net.Conn
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			c.accepted.Add(1)
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			c.wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer c.wg.Done()
				io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(in, out)
			go pipe(out, in)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		c.wg.Wait()
	})
	return c
}

func (c *connCounter) addr() string { return c.ln.Addr().String() }
