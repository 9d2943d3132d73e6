package e2e

// Tests of the tenant boundary, attacked as a hostile tenant would: each
// runs a real deployment (an engine role that is not a superuser, tenant
// roles provisioned by the proxy, login roles per tenant, a shared
// NOINHERIT role) and checks the SQLSTATE of every refusal and, read as
// the superuser, that nothing changed.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

var (
	globexSecret = pgx.Identifier{authGlobex, "secret"}.Sanitize()
	acmeInvoice  = pgx.Identifier{authAcme, "invoice"}.Sanitize()
)

// TestAuthorityTenantSessions: PostgreSQL itself keeps a session to its
// tenant role's privileges.
func TestAuthorityTenantSessions(t *testing.T) {
	f := newAuthority(t, authSetup{})
	// The acme login role could read globex's table on its own.
	authExec(t, f.db, fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s; GRANT SELECT ON %s TO %s",
		authIdent(authGlobex), authAcmeApp, globexSecret, authAcmeApp))
	before := f.state()

	t.Run("non-members are refused by PostgreSQL", func(t *testing.T) {
		for _, c := range []struct{ user, org string }{
			{authOutsider, authAcme},
			{authAcmeApp, authGlobex},
			{authGlobexApp, authAcme},
			{authReader, authGlobex},
		} {
			_, err := f.tryConn(c.user, c.org)
			if e := wantFatal(t, err, "42501", c.user+" to "+c.org); e != nil && e.Routine == "" {
				t.Errorf("%s to %s: refused by the proxy (%s), want PostgreSQL's refusal", c.user, c.org, e.Message)
			}
		}
	})

	t.Run("no unscoped session for a non-admin", func(t *testing.T) {
		for _, user := range []string{authAcmeApp, authShared, authEngine} {
			_, err := f.tryConn(user, f.db)
			wantFatal(t, err, "3D000", user+" to the real database")
		}
	})

	t.Run("the session runs as the tenant role", func(t *testing.T) {
		for _, user := range []string{authAcmeApp, authShared} {
			conn := f.conn(user, authAcme)
			if got := queryValue[string](t, conn, "SELECT current_user"); got != authAcme {
				t.Errorf("%s: current_user %q, want %q", user, got, authAcme)
			}
			reads := []struct{ what, sql, code string }{
				{"qualified", "SELECT count(*) FROM " + globexSecret, "42501"},
				// Without USAGE on globex's schema the name does not resolve.
				{"with search_path set", "SET search_path = " + authIdent(authGlobex) + "; SELECT count(*) FROM secret", "42P01"},
				{"through set_config", "SELECT set_config('search_path', '" + authIdent(authGlobex) + "', false); SELECT count(*) FROM secret", "42P01"},
				{"through a view", "CREATE TEMP VIEW peek AS SELECT * FROM " + globexSecret, "42501"},
				{"through a function", "CREATE FUNCTION pg_temp.peek() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM " + globexSecret + "'; SELECT pg_temp.peek()", "42501"},
				{"through COPY", "COPY " + globexSecret + " TO STDOUT", "42501"},
				{"the engine's catalog", "SELECT count(*) FROM pgmigrate.history", "42501"},
			}
			for _, r := range reads {
				wantServerError(t, execErr(t, conn, r.sql), r.code, user+": read of globex's table "+r.what)
				mustExec(t, conn, "RESET search_path")
			}
			// Unqualified, the name resolves in acme's schema only.
			wantServerError(t, execErr(t, conn, "SELECT count(*) FROM secret"), "42P01", user+": unqualified read")
			if got := queryValue[int](t, conn, "SELECT count(*)::int FROM invoice"); got != 2 {
				t.Errorf("%s: acme's invoice has %d rows, want 2", user, got)
			}
		}
	})
	t.Run("other sessions are out of reach", func(t *testing.T) {
		victims := []*pgx.Conn{
			f.conn(authGlobexApp, authGlobex, "application_name", "authz-victim"),
			f.conn(authShared, authGlobex, "application_name", "authz-victim"),
		}
		// The engine has connections open.
		mustExec(t, victims[0], "CALL migrate.list_models()")
		pids := queryStrings(t, f.su, "SELECT pid::text FROM pg_stat_activity WHERE application_name = 'authz-victim' OR usename = $1", authEngine)
		if len(pids) < 3 {
			t.Fatalf("backends to attack: %q", pids)
		}
		for _, user := range []string{authAcmeApp, authShared} {
			conn := f.conn(user, authAcme)
			for _, pid := range pids {
				for _, fn := range []string{"pg_terminate_backend", "pg_cancel_backend"} {
					wantServerError(t, execErr(t, conn, "SELECT "+fn+"("+pid+")"), "42501", user+": "+fn+" of another tenant's or the engine's backend")
				}
			}
			seen := queryStrings(t, conn, "SELECT coalesce(query, '') FROM pg_stat_activity WHERE application_name = 'authz-victim' OR usename = $1", authEngine)
			for _, q := range seen {
				if q != "<insufficient privilege>" {
					t.Errorf("%s sees another session's query %q", user, q)
				}
			}
		}
		for _, v := range victims {
			mustWork(t, v)
		}
	})
	f.wantSameState(before, "reads of another tenant's table")
}

// TestAuthorityLoginRoleOwnRights: a tenant session does not have its
// login role's own privileges, and the posture check reports a login role
// that holds some, which dynamic SQL could return to.
func TestAuthorityLoginRoleOwnRights(t *testing.T) {
	f := newAuthority(t, authSetup{})
	authExec(t, f.db, fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s; GRANT SELECT ON %s TO %s",
		authIdent(authGlobex), authAcmeApp, globexSecret, authAcmeApp))
	conn := f.conn(authAcmeApp, authAcme)
	wantServerError(t, execErr(t, conn, "SELECT count(*) FROM "+globexSecret), "42501", "a qualified read of globex's table")
	// Dynamic SQL can leave the tenant role, back to the login role and
	// its own privileges: PostgreSQL allows it, no proxy can see it, and
	// the posture check names the login role that makes it matter.
	mustExec(t, conn, "SELECT set_config('role', 'none', false)")
	if got := queryValue[string](t, conn, "SELECT current_user"); got != authAcmeApp {
		t.Fatalf("after set_config('role', 'none') the session runs as %s", got)
	}
	rows, err := f.admin().Query(testContext(t), "CALL migrate.verify()")
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	var object, kind, detail string
	var model *string
	if _, err := pgx.ForEachRow(rows, []any{&model, &object, &kind, &detail}, func() error {
		found = found || object == authAcmeApp && strings.Contains(detail, "privileges of its own")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !found {
		t.Errorf("verify() in an admin session does not report %s's own privileges in globex's schema", authAcmeApp)
	}
}

// TestAuthorityMigrateAcrossOrgs: migrate commands act for the session's
// own org only, whoever asks and however.
func TestAuthorityMigrateAcrossOrgs(t *testing.T) {
	f := newAuthority(t, authSetup{})
	before := f.state()
	other := ", org => " + authLiteral(authGlobex)
	commands := []string{
		"CALL migrate.list_models(" + other[2:] + ")",
		"CALL migrate.describe('secret'" + other + ")",
		"CALL migrate.history(" + other[2:] + ")",
		"CALL migrate.history('secret'" + other + ")",
		"CALL migrate.verify(" + other[2:] + ")",
		`CALL migrate.add_field('secret', '{"name":"x","type":"Int"}', dry_run => true` + other + ")",
		`CALL migrate.drop_model('secret', dry_run => true` + other + ")",
		`CALL migrate.add_field('secret', '{"name":"x","type":"Int"}'` + other + ")",
		`CALL migrate.alter_field('secret', '{"name":"payload","type":"Text","nullable":false}'` + other + ")",
		"CALL migrate.rename_field('secret', 'payload', 'stolen'" + other + ")",
		"CALL migrate.drop_field('secret', 'payload', confirm => true" + other + ")",
		"CALL migrate.drop_model('secret', confirm => true" + other + ")",
		`CALL migrate.create_model('planted', '[{"name":"id","type":"Int"}]'` + other + ")",
		"CALL migrate.adopt_model('secret'" + other + ")",
		"CALL migrate.drop_tenant(" + authLiteral(authGlobex) + ")",
		"CALL migrate.create_tenant('authz-evil')",
		"CALL migrate.list_tenants()",
		"CALL migrate.add_field('invoice', '{\"name\":\"x\",\"type\":\"Int\"}', org => '*')",
	}
	// The shared role is a member of globex's role too: the session, not
	// the user, decides.
	for _, user := range []string{authAcmeApp, authShared, authReader} {
		conn := f.conn(user, authAcme)
		for _, sql := range commands {
			wantProxyError(t, execErr(t, conn, sql), "42501", user+": "+sql)
			// The extended protocol, with the org as a parameter.
			if strings.Contains(sql, other) {
				_, err := conn.Exec(testContext(t), strings.Replace(sql, other, ", org => $1", 1), authGlobex)
				wantProxyError(t, err, "42501", user+" (extended): "+sql)
			}
		}
		mustWork(t, conn)
	}

	t.Run("connecting to globex's database", func(t *testing.T) {
		_, err := f.tryConn(authAcmeApp, authGlobex)
		wantFatal(t, err, "42501", "acme's user to globex")
		_, err = f.tryConn(authAcmeApp, authAcme, func(c *pgx.ConnConfig) { c.RuntimeParams["options"] = "-c pgmigrate.org=" + authGlobex })
		if err == nil {
			t.Error("acme's database with pgmigrate.org naming globex: connected")
		}
		_, err = f.tryConn(authAcmeApp, f.db, func(c *pgx.ConnConfig) { c.RuntimeParams["options"] = "-c pgmigrate.org=" + authGlobex })
		wantFatal(t, err, "42501", "the real database with pgmigrate.org naming globex")
	})

	t.Run("names that leave the tenant's schema", func(t *testing.T) {
		conn := f.conn(authAcmeApp, authAcme)
		name, _ := json.Marshal(`x" int, y int); DROP TABLE ` + globexSecret + `; --`)
		injected := strings.ReplaceAll(string(name), "'", "''")
		for _, sql := range []string{
			`CALL migrate.create_model('stolen', '[{"name":"id","type":"Int"},{"name":"s","type":"Int","references":{"schema":"` + authGlobex + `","table":"secret","column":"id","onDelete":"CASCADE"}}]')`,
			`CALL migrate.add_field('invoice', '{"name":"s","type":"Int","references":{"schema":"` + authGlobex + `","table":"secret","column":"id"}}')`,
			`CALL migrate.add_field('invoice', '{"name":"s","type":"Int","references":{"schema":"pgmigrate","table":"tenants","column":"org"}}')`,
			`CALL migrate.create_model('` + authGlobex + `.planted', '[{"name":"id","type":"Int"}]')`,
			`CALL migrate.create_model('"` + authGlobex + `"."planted"', '[{"name":"id","type":"Int"}]')`,
			`CALL migrate.drop_model('` + authGlobex + `.secret', confirm => true)`,
			`CALL migrate.add_field('invoice', '{"name":` + injected + `,"type":"Int"}')`,
		} {
			err := execErr(t, conn, sql)
			if err == nil {
				t.Errorf("%s: succeeded", sql)
				continue
			}
			if code := sqlState(err); code != "22023" && code != "42501" {
				t.Errorf("%s: %v, want 22023 or 42501", sql, err)
			}
		}
	})

	t.Run("membership revoked during the session", func(t *testing.T) {
		conn := f.conn(authReader, authAcme)
		mustExec(t, conn, "CALL migrate.list_models()")
		authExec(t, f.db, fmt.Sprintf("REVOKE %s FROM %s", authIdent(authAcme), authReader))
		for _, sql := range []string{
			"CALL migrate.list_models()",
			"CALL migrate.describe('invoice')",
			`CALL migrate.add_field('invoice', '{"name":"x","type":"Int"}', dry_run => true)`,
			`CALL migrate.add_field('invoice', '{"name":"x","type":"Int"}')`,
		} {
			wantProxyError(t, execErr(t, conn, sql), "42501", "revoked member: "+sql)
		}
		authExec(t, f.db, fmt.Sprintf("GRANT %s TO %s", authIdent(authAcme), authReader))
	})
	f.wantSameState(before, "migrate commands for another org")
}

// TestAuthorityMigratorsPolicy: who may change a tenant's schema is
// policy, checked by the proxy before the engine acts.
func TestAuthorityMigratorsPolicy(t *testing.T) {
	only := "  migrators: [" + authAcmeApp + ", " + authGlobexApp + "]\n"
	f := newAuthority(t, authSetup{policy: only})
	reader := f.conn(authReader, authAcme)
	before := f.state()
	for _, sql := range []string{
		"CALL migrate.drop_model('invoice', confirm => true)",
		"CALL migrate.drop_field('invoice', 'title', confirm => true)",
		`CALL migrate.add_field('invoice', '{"name":"note","type":"Text"}')`,
		`CALL migrate.create_model('receipt', '[{"name":"id","type":"Int"}]')`,
		"CALL migrate.rename_field('invoice', 'title', 'name')",
	} {
		wantProxyError(t, execErr(t, reader, sql), "42501", "reader: "+sql)
	}
	// Reads and dry runs need membership only.
	if got := queryStrings(t, reader, "CALL migrate.list_models()"); !slices.Equal(got, []string{"invoice"}) {
		t.Errorf("reader's list_models: %q", got)
	}
	mustExec(t, reader, `CALL migrate.add_field('invoice', '{"name":"note","type":"Text"}', dry_run => true)`)
	f.wantSameState(before, "commands of a user who is not a migrator")
	wantColumns(t, f.su, authAcme, "invoice", "id integer", "title character varying(200)")

	f.reload("  migrators: [\"*\"]\n", "")
	mustExec(t, reader, `CALL migrate.add_field('invoice', '{"name":"note","type":"Text"}')`)
	mustExec(t, reader, "CALL migrate.drop_field('invoice', 'title', confirm => true)")
	wantColumns(t, f.su, authAcme, "invoice", "id integer", "note text")
	if got := queryValue[int](t, f.su, "SELECT count(*)::int FROM "+acmeInvoice); got != 2 {
		t.Errorf("acme's invoice has %d rows, want 2", got)
	}
}

// TestAuthorityPipelinedCrossOrg: a command for another org hidden in a
// pipeline is refused like any other, and the pipeline fails as
// PostgreSQL would fail it: nothing in it commits.
func TestAuthorityPipelinedCrossOrg(t *testing.T) {
	f := newAuthority(t, authSetup{})
	conn := f.conn(authShared, authAcme)
	before := f.state()
	drop := "CALL migrate.drop_model('secret', confirm => true, org => " + authLiteral(authGlobex) + ")"

	t.Run("pgx batch", func(t *testing.T) {
		batch := &pgx.Batch{}
		batch.Queue("INSERT INTO invoice (id, title) VALUES ($1, $2)", 3, "batched")
		batch.Queue(drop)
		batch.Queue("INSERT INTO invoice (id, title) VALUES ($1, $2)", 4, "after")
		results := conn.SendBatch(testContext(t), batch)
		if _, err := results.Exec(); err != nil {
			t.Fatalf("the first INSERT: %v", err)
		}
		_, err := results.Exec()
		wantProxyError(t, err, "42501", "drop_model for globex in a batch")
		results.Close()
		mustWork(t, conn)
		// What follows the refused command up to the Sync is skipped.
		// (Whether what came before it commits, as the proxy forwards the
		// Sync, is the relay's pipeline semantics, tested with the relay.)
		wantNoInvoices(t, f, 4)
	})

	t.Run("pgconn pipeline", func(t *testing.T) {
		pl := conn.PgConn().StartPipeline(testContext(t))
		pl.SendQueryParams("INSERT INTO invoice (id, title) VALUES (5, 'piped')", nil, nil, nil, nil)
		pl.SendQueryParams(drop, nil, nil, nil, nil)
		pl.SendQueryParams("SELECT 1", nil, nil, nil, nil)
		pl.SendPipelineSync()
		pl.SendQueryParams("CALL migrate.list_models(org => "+authLiteral(authGlobex)+")", nil, nil, nil, nil)
		pl.SendPipelineSync()
		if err := pl.Flush(); err != nil {
			t.Fatal(err)
		}
		var codes []string
		for {
			res, err := pl.GetResults()
			if err != nil {
				codes = append(codes, sqlState(err))
				continue
			}
			if res == nil {
				break
			}
			switch r := res.(type) {
			case *pgconn.ResultReader:
				_, err := r.Close()
				codes = append(codes, sqlState(err))
			case *pgconn.PipelineSync:
				codes = append(codes, "sync")
			}
		}
		if err := pl.Close(); err != nil {
			t.Logf("closing the pipeline: %v", err)
		}
		want := []string{"", "42501", "sync", "42501", "sync"}
		if !slices.Equal(codes, want) {
			t.Errorf("pipeline results %q, want %q", codes, want)
		}
		mustWork(t, conn)
	})

	t.Run("one query", func(t *testing.T) {
		wantProxyError(t, execErr(t, conn, "INSERT INTO invoice (id, title) VALUES (6, 'multi'); "+drop), "0A000", "INSERT and drop_model in one Query")
	})
	// Set aside acme's rows inserted before the refused commands (see
	// above): the rest of the database, globex first, is as it was.
	authExec(t, f.db, "DELETE FROM "+acmeInvoice+" WHERE id IN (3, 5)")
	f.wantSameState(before, "pipelines holding a command for another org")
}

// wantNoInvoices fails t if acme's invoice holds a row with one of ids:
// the statements that would have inserted them came after a refused
// command in their pipeline, which PostgreSQL would have skipped.
func wantNoInvoices(t testing.TB, f *authority, ids ...int) {
	t.Helper()
	got := queryStrings(t, f.su, "SELECT id::text || ' ' || title FROM "+acmeInvoice+" WHERE id = ANY ($1) ORDER BY id", ids)
	if len(got) > 0 {
		t.Errorf("acme's invoice holds %q, inserted after the refused command of its pipeline", got)
	}
}

// TestAuthorityTrapTable: a table the tenant made itself, with a row
// policy and triggers that would act with the rights of whoever runs
// them, is one the engine refuses to touch.
func TestAuthorityTrapTable(t *testing.T) {
	f := newAuthority(t, authSetup{})
	acme := f.conn(authAcmeApp, authAcme)
	// trap() records who ran it and tries to make acme's login role a
	// member of globex's role, unless acme itself runs it.
	mustExec(t, acme, fmt.Sprintf(`
CREATE TABLE side_effect (who text, what text);
GRANT INSERT ON side_effect TO PUBLIC;
CREATE FUNCTION trap() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	IF current_user::text <> %[1]s THEN
		INSERT INTO %[2]s.side_effect VALUES (current_user, 'trap');
		BEGIN
			EXECUTE 'GRANT %[3]s TO %[4]s';
		EXCEPTION WHEN OTHERS THEN
			INSERT INTO %[2]s.side_effect VALUES (current_user, SQLERRM);
		END;
	END IF;
	RETURN true;
END$$;
CREATE FUNCTION trap_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM %[2]s.trap();
	RETURN NULL;
END$$;
CREATE TABLE trap (id int PRIMARY KEY, note text);
INSERT INTO trap VALUES (1, 'a'), (2, 'b');
ALTER TABLE trap ENABLE ROW LEVEL SECURITY;
ALTER TABLE trap FORCE ROW LEVEL SECURITY;
CREATE POLICY p ON trap USING (%[2]s.trap()) WITH CHECK (%[2]s.trap());
CREATE TRIGGER row_trap BEFORE INSERT OR UPDATE OR DELETE ON trap FOR EACH ROW EXECUTE FUNCTION trap_trigger();
CREATE TRIGGER statement_trap BEFORE TRUNCATE ON trap FOR EACH STATEMENT EXECUTE FUNCTION trap_trigger();
`, authLiteral(authAcme), authIdent(authAcme), authIdent(authGlobex), authAcmeApp))
	before := f.state()

	commands := []string{
		`CALL migrate.add_field('trap', '{"name":"x","type":"Int"}', dry_run => true)`,
		`CALL migrate.add_field('trap', '{"name":"x","type":"Int","default":1}')`,
		`CALL migrate.add_field('trap', '{"name":"u","type":"Int","unique":true}')`,
		`CALL migrate.alter_field('trap', '{"name":"note","type":"Text","nullable":false}')`,
		`CALL migrate.alter_field('trap', '{"name":"note","type":"Text","default":"x"}', dry_run => true)`,
		"CALL migrate.drop_field('trap', 'note', confirm => true)",
		"CALL migrate.rename_field('trap', 'note', 'n')",
		"CALL migrate.drop_model('trap', confirm => true)",
		`CALL migrate.create_model('trap', '[{"name":"id","type":"Int"},{"name":"note","type":"Text"}]')`,
		`CALL migrate.create_model('child', '[{"name":"id","type":"Int"},{"name":"t","type":"Int","references":{"table":"trap","column":"id","onDelete":"CASCADE"}}]')`,
		`CALL migrate.add_field('invoice', '{"name":"t","type":"Int","references":{"table":"trap","column":"id"}}')`,
	}
	for _, sql := range commands {
		pgErr := wantProxyError(t, execErr(t, acme, sql), "42501", sql)
		if pgErr != nil && !strings.Contains(pgErr.Hint, "CALL migrate.adopt_model") {
			t.Errorf("%s: HINT %q does not name CALL migrate.adopt_model", sql, pgErr.Hint)
		}
	}
	// A tenant cannot have the engine take its table over.
	wantProxyError(t, execErr(t, acme, "CALL migrate.adopt_model('trap')"), "42501", "adopt_model from a tenant session")
	// Reads touch the catalog only.
	mustExec(t, acme, "CALL migrate.verify()")
	mustExec(t, acme, "CALL migrate.list_models()")
	// Not for an admin either.
	admin := f.admin()
	org := ", org => " + authLiteral(authAcme)
	for _, sql := range []string{
		`CALL migrate.add_field('trap', '{"name":"x","type":"Int"}'` + org + ")",
		"CALL migrate.drop_model('trap', confirm => true" + org + ")",
	} {
		wantProxyError(t, execErr(t, admin, sql), "42501", "admin: "+sql)
	}
	mustExec(t, admin, "CALL migrate.verify("+org[2:]+")")

	if got := queryStrings(t, f.su, "SELECT who || ': ' || what FROM "+pgx.Identifier{authAcme, "side_effect"}.Sanitize()); len(got) > 0 {
		t.Errorf("the tenant's code ran with another role's rights: %q", got)
	}
	if queryValue[bool](t, f.su, "SELECT pg_has_role($1, $2, 'MEMBER')", authAcmeApp, authGlobex) {
		t.Errorf("%s became a member of %s", authAcmeApp, authGlobex)
	}
	f.wantSameState(before, "migrate commands on the tenant's own table")
}

// TestAuthorityStartupParameters: a client cannot choose its schema or
// role at startup; what would change who the session is ends the
// connection before the upstream is contacted.
func TestAuthorityStartupParameters(t *testing.T) {
	var counter *connCounter
	f := newAuthority(t, authSetup{dsn: func(dsn string) string {
		if counter == nil {
			counter = newConnCounter(t, cluster.Addr())
		}
		return strings.Replace(dsn, cluster.Addr(), counter.addr(), 1)
	}})
	param := func(name, value string) func(*pgx.ConnConfig) {
		return func(c *pgx.ConnConfig) { c.RuntimeParams[name] = value }
	}
	before := f.state()
	defer f.wantSameState(before, "startup parameters")

	t.Run("search_path is the tenant's", func(t *testing.T) {
		for _, c := range []struct {
			what string
			opt  func(*pgx.ConnConfig)
		}{
			{"pgx ?search_path=", param("search_path", authGlobex)},
			{"search_path quoted with public", param("search_path", authIdent(authGlobex)+", public")},
			{"Search_Path", param("Search_Path", authIdent(authGlobex))},
			{"options -c search_path", param("options", "-c search_path="+authIdent(authGlobex))},
			{"options --search_path", param("options", "--search_path="+authIdent(authGlobex))},
			{"options with an escaped space", param("options", `-c application_name=x\ -c\ role=`+authGlobex)},
		} {
			conn, err := f.tryConn(authShared, authAcme, c.opt)
			if err != nil {
				t.Errorf("%s: %v", c.what, err)
				continue
			}
			if got := queryValue[string](t, conn, "SHOW search_path"); got != authIdent(authAcme) {
				t.Errorf("%s: search_path %s, want %s", c.what, got, authIdent(authAcme))
			}
			if got := queryValue[string](t, conn, "SELECT current_user"); got != authAcme {
				t.Errorf("%s: current_user %s, want %s", c.what, got, authAcme)
			}
			wantServerError(t, execErr(t, conn, "SELECT count(*) FROM secret"), "42P01", c.what+": unqualified read of globex's table")
		}
	})

	t.Run("who the session is cannot be chosen", func(t *testing.T) {
		for _, c := range []struct {
			what string
			opt  func(*pgx.ConnConfig)
		}{
			{"role", param("role", authGlobex)},
			{"ROLE", param("ROLE", authGlobex)},
			{"options -c role", param("options", "-c role="+authGlobex)},
			{"options -crole", param("options", "-crole="+authGlobex)},
			{"options --role", param("options", "--role="+authGlobex)},
			{"options -c ROLE", param("options", "-c ROLE="+authGlobex)},
			{"options after search_path", param("options", "-c search_path=x -c role="+authGlobex)},
			{"session_authorization", param("session_authorization", authGlobexApp)},
			{"options -c session_authorization", param("options", "-c session_authorization="+authGlobexApp)},
			{"replication=database", param("replication", "database")},
			{"replication=true", param("replication", "true")},
			{"is_superuser", param("is_superuser", "on")},
			{"a custom setting", param("authz.anything", "x")},
			{"options -c row_security", param("options", "-c row_security=off")},
			{"options -D", param("options", "-D /tmp")},
		} {
			acceptedBefore := counter.accepted.Load()
			backendsBefore := backends(t, f.su, authShared)
			_, err := f.tryConn(authShared, authAcme, c.opt)
			wantProxyError(t, wantFatalErr(t, err, c.what), "42501", c.what)
			if n := counter.accepted.Load(); n != acceptedBefore {
				t.Errorf("%s: the proxy opened %d upstream connections", c.what, n-acceptedBefore)
			}
			if n := backends(t, f.su, authShared); n != backendsBefore {
				t.Errorf("%s: %d backends of %s, %d before", c.what, n, authShared, backendsBefore)
			}
		}
	})

	t.Run("an org named twice", func(t *testing.T) {
		acceptedBefore := counter.accepted.Load()
		_, err := f.tryConn(authShared, authAcme, param("options", "-c pgmigrate.org="+authGlobex))
		if wantFatalErr(t, err, "pgmigrate.org naming another org") == nil {
			return
		}
		if n := counter.accepted.Load(); n != acceptedBefore {
			t.Errorf("the proxy opened %d upstream connections", n-acceptedBefore)
		}
	})
}

// wantFatalErr fails t unless err is a FATAL ErrorResponse, and returns it.
func wantFatalErr(t testing.TB, err error, what string) error {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		t.Errorf("%s: %v, want a FATAL error", what, err)
		return nil
	}
	if pgErr.Severity != "FATAL" {
		t.Errorf("%s: %s %s (%s), want FATAL", what, pgErr.Severity, pgErr.Code, pgErr.Message)
	}
	return err
}

// roleChanges are statements that change the session's role, in many
// spellings.
var roleChanges = []string{
	"SET ROLE " + authIdent(authGlobex),
	"set role '" + authGlobex + "'",
	"SET SESSION ROLE " + authIdent(authGlobex),
	"SET LOCAL ROLE " + authIdent(authGlobex),
	"SET ROLE NONE",
	"RESET ROLE",
	"SET SESSION AUTHORIZATION " + authGlobexApp,
	"SET SESSION AUTHORIZATION DEFAULT",
	"RESET SESSION AUTHORIZATION",
	`set "role" = '` + authGlobex + "'",
	`SET "ROLE" TO '` + authGlobex + "'",
	"SET role TO DEFAULT",
	"SET session_authorization = '" + authGlobexApp + "'",
	`SET U&"\0072ole" = '` + authGlobex + "'",
	"/* hidden */ SET ROLE " + authIdent(authGlobex),
	"-- hidden\nSET ROLE " + authIdent(authGlobex),
	"set/**/role " + authIdent(authGlobex),
	"SET\tROLE\n" + authIdent(authGlobex),
	"SELECT 1; SET ROLE " + authIdent(authGlobex),
	"SET search_path = public; SET ROLE " + authIdent(authGlobex),
	"SELECT 1; RESET ROLE",
}

// TestAuthorityRoleChange: statements that change the role are refused by
// the proxy, in the simple and the extended protocol, and the session
// goes on as its tenant role.
func TestAuthorityRoleChange(t *testing.T) {
	f := newAuthority(t, authSetup{})
	before := f.state()
	defer f.wantSameState(before, "role changes")
	for _, user := range []string{authShared, authAcmeApp} {
		conn := f.conn(user, authAcme)
		check := func(what string) {
			t.Helper()
			if got := queryValue[string](t, conn, "SELECT current_user"); got != authAcme {
				t.Fatalf("%s after %s: current_user %s, want %s", user, what, got, authAcme)
			}
			wantServerError(t, execErr(t, conn, "SELECT count(*) FROM "+globexSecret), "42501", user+" after "+what)
		}
		for _, sql := range roleChanges {
			wantProxyError(t, execErr(t, conn, sql), "42501", user+" (Query): "+sql)
			check(sql)
			wantProxyError(t, parseErr(t, conn, sql), "42501", user+" (Parse): "+sql)
			check(sql)
		}
		// Inside a transaction block.
		mustExec(t, conn, "BEGIN")
		wantProxyError(t, execErr(t, conn, "SET LOCAL ROLE "+authIdent(authGlobex)), "42501", user+": SET LOCAL ROLE in a transaction")
		mustExec(t, conn, "ROLLBACK")
		check("SET LOCAL ROLE in a transaction")
		// In a pipeline: pgx prepares every statement of a batch first.
		batch := &pgx.Batch{}
		batch.Queue("SELECT $1::int", 1)
		batch.Queue("SET ROLE " + authIdent(authGlobex))
		batch.Queue("SELECT count(*) FROM " + globexSecret)
		results := conn.SendBatch(testContext(t), batch)
		var first error
		for range 3 {
			if _, err := results.Exec(); err != nil && first == nil {
				first = err
			}
		}
		results.Close()
		wantProxyError(t, first, "42501", user+": SET ROLE in a batch")
		check("SET ROLE in a batch")
	}

	// psql sends each statement of a script as a Query of its own.
	script := strings.Join(roleChanges, ";\n") + ";\nSELECT current_user;\n"
	stdout, codes, stderr := psqlScript(t, f.p.url(authShared, authPassword, authAcme), script)
	if lines := strings.Fields(stdout); len(lines) == 0 || lines[len(lines)-1] != authAcme {
		t.Errorf("psql: current_user %q, want %s\n%s", stdout, authAcme, stderr)
	}
	for i, code := range codes {
		if code != "42501" {
			t.Errorf("psql: error %d has SQLSTATE %s, want 42501\n%s", i, code, stderr)
		}
	}
	if len(codes) < len(roleChanges)-3 {
		t.Errorf("psql: %d errors for %d role changes\n%s", len(codes), len(roleChanges), stderr)
	}
}

// TestAuthorityTenantPlacement: the engine acts where the config puts a
// tenant, its own schema or its own database, and nowhere else.
func TestAuthorityTenantPlacement(t *testing.T) {
	const (
		hooli    = "authz-hooli"
		hooliApp = "authz_hooli_app"
	)
	var hooliDB string
	f := newAuthority(t, authSetup{
		acmeSchema: "acme_v2",
		before: func(f *authority) {
			hooliDB = cluster.CreateDatabase(t)
			authExec(t, hooliDB, "ALTER DATABASE "+authIdent(hooliDB)+" OWNER TO "+authEngine)
			f.roles = append(f.roles, hooli)
			f.asEngine(f.db, "CREATE ROLE "+authIdent(hooli)+" NOLOGIN")
			f.loginRole(hooliApp, hooli)
			f.setup.tenants = fmt.Sprintf("  - org: %s\n    database: %q\n", hooli, hooliDB)
		},
	})

	t.Run("own schema", func(t *testing.T) {
		acme := f.conn(authAcmeApp, authAcme)
		if got := queryValue[string](t, acme, "SELECT current_schema()"); got != "acme_v2" {
			t.Errorf("acme's schema %s, want acme_v2", got)
		}
		wantColumns(t, f.su, "acme_v2", "invoice", "id integer", "title character varying(200)")
		if got := queryValue[string](t, f.su, "SELECT schema FROM pgmigrate.tenants WHERE org = $1", authAcme); got != "acme_v2" {
			t.Errorf("pgmigrate.tenants has schema %s for acme, want acme_v2", got)
		}
		mustExec(t, acme, `CALL migrate.add_field('invoice', '{"name":"note","type":"Text"}')`)
		wantColumns(t, f.su, "acme_v2", "invoice", "id integer", "title character varying(200)", "note text")
		if got := queryStrings(t, f.su, "SELECT nspname::text FROM pg_namespace WHERE nspname = $1", authAcme); len(got) > 0 {
			if tables := queryStrings(t, f.su, "SELECT relname::text FROM pg_class WHERE relnamespace = $1::regnamespace", authIdent(authAcme)); len(tables) > 0 {
				t.Errorf("schema %s, named like the org, holds %q", authAcme, tables)
			}
		}
		if got := queryStrings(t, acme, "CALL migrate.list_models()"); !slices.Equal(got, []string{"invoice"}) {
			t.Errorf("acme's models %q", got)
		}
	})

	t.Run("own database", func(t *testing.T) {
		conn := f.conn(hooliApp, hooli)
		if got := queryValue[string](t, conn, "SELECT current_database()"); got != hooliDB {
			t.Errorf("hooli's session is in database %s, want %s", got, hooliDB)
		}
		schema := queryValue[string](t, conn, "SELECT current_schema()")
		mustExec(t, conn, `CALL migrate.create_model('ticket', '[{"name":"id","type":"Int"},{"name":"subject","type":"Text"}]')`)
		mustExec(t, conn, "INSERT INTO ticket VALUES (1, 'hello')")
		direct := directConn(t, hooliDB)
		wantColumns(t, direct, schema, "ticket", "id integer", "subject text")
		if owner := queryValue[string](t, direct, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = $1::regclass", pgx.Identifier{schema, "ticket"}.Sanitize()); owner != authEngine {
			t.Errorf("hooli's ticket is owned by %s, want %s", owner, authEngine)
		}
		if got := queryStrings(t, f.su, "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'ticket'"); len(got) > 0 {
			t.Errorf("the shared database holds %q", got)
		}
		if got := queryStrings(t, conn, "CALL migrate.list_models()"); !slices.Equal(got, []string{"ticket"}) {
			t.Errorf("hooli's models %q", got)
		}
		_, err := f.tryConn(hooliApp, authAcme)
		wantFatal(t, err, "42501", "hooli's user to acme")
		_, err = f.tryConn(authAcmeApp, hooli)
		wantFatal(t, err, "42501", "acme's user to hooli")
	})
}

// ddlStatements are what raw_ddl: deny refuses in the proxy.
var ddlStatements = []string{
	"CREATE TABLE planted (id int)",
	"create temp table planted_temp (id int)",
	"ALTER TABLE invoice ADD COLUMN planted int",
	"DROP TABLE invoice",
	"COMMENT ON TABLE invoice IS 'planted'",
	"GRANT SELECT ON invoice TO PUBLIC",
	"REVOKE SELECT ON invoice FROM " + authReader,
	"CREATE VIEW planted_view AS SELECT 1",
	"CREATE FUNCTION planted() RETURNS int LANGUAGE sql AS 'SELECT 1'",
	"CREATE INDEX ON invoice (title)",
	"ALTER ROLE " + authAcmeApp + " SET search_path = public",
	"SECURITY LABEL ON TABLE invoice IS 'x'",
	"IMPORT FOREIGN SCHEMA x FROM SERVER y INTO z",
	"/* hidden */ create table planted (id int)",
	"SELECT 1; DROP TABLE invoice",
}

// TestAuthorityRawDDLDeny: with raw_ddl: deny the proxy refuses DDL
// statements and PostgreSQL refuses DDL that arrives any other way.
func TestAuthorityRawDDLDeny(t *testing.T) {
	f := newAuthority(t, authSetup{policy: "  raw_ddl: deny\n"})
	if queryValue[bool](t, f.su, "SELECT has_schema_privilege($1::text, $2::text, 'CREATE')", authAcme, authAcme) {
		t.Errorf("tenant role %s may create in its schema under raw_ddl: deny", authAcme)
	}
	conn := f.conn(authAcmeApp, authAcme)
	before := f.state()
	for _, sql := range ddlStatements {
		wantProxyError(t, execErr(t, conn, sql), "42501", "Query: "+sql)
		wantProxyError(t, parseErr(t, conn, sql), "42501", "Parse: "+sql)
	}
	for _, sql := range []string{
		"DO $$BEGIN CREATE TABLE planted (id int); END$$",
		"DO $$BEGIN EXECUTE 'CREATE VIEW planted_view AS SELECT 1'; END$$",
		"DO $$BEGIN EXECUTE 'ALTER TABLE invoice ADD COLUMN planted int'; END$$",
		"DO $$BEGIN EXECUTE 'DROP TABLE invoice'; END$$",
		"SELECT set_config('search_path', 'x', false); DO $$BEGIN EXECUTE 'CREATE TABLE " + acmeInvoice[:len(acmeInvoice)-len(`"invoice"`)] + "planted (id int)'; END$$",
	} {
		wantServerError(t, execErr(t, conn, sql), "42501", sql)
		mustExec(t, conn, "RESET search_path")
	}
	mustWork(t, conn)
	f.wantSameState(before, "DDL under raw_ddl: deny")
	// The engine still changes the schema.
	mustExec(t, conn, `CALL migrate.add_field('invoice', '{"name":"note","type":"Text"}')`)
	wantColumns(t, f.su, authAcme, "invoice", "id integer", "title character varying(200)", "note text")
}

// historyRow is a row of CALL migrate.history().
type historyRow struct {
	Operation, Statements, AppliedBy string
	Model                            *string
}

// history returns the history rows the session sees.
func history(t testing.TB, conn *pgx.Conn) []historyRow {
	t.Helper()
	rows, err := conn.Query(testContext(t), "CALL migrate.history()")
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (historyRow, error) {
		var h historyRow
		var skip any
		err := r.Scan(&skip, &h.Model, &skip, &h.Operation, &h.Statements, &skip, &skip, &h.AppliedBy, &skip)
		return h, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAuthorityRawDDLAudit: with raw_ddl: audit DDL goes through and is
// recorded, as sent, in the tenant's history and the log.
func TestAuthorityRawDDLAudit(t *testing.T) {
	f := newAuthority(t, authSetup{policy: "  raw_ddl: audit\n"})
	conn := f.conn(authAcmeApp, authAcme, "application_name", "authz-audited")
	statements := []string{
		"CREATE TABLE audited (id int)",
		"ALTER TABLE audited ADD COLUMN note text",
		"COMMENT ON TABLE audited IS 'seen'",
	}
	for _, sql := range statements {
		mustExec(t, conn, sql)
	}
	failing := "DROP TABLE not_there"
	wantServerError(t, execErr(t, conn, failing), "42P01", failing)
	extended := "CREATE TABLE audited_extended (id int)"
	if err := conn.PgConn().ExecParams(testContext(t), extended, nil, nil, nil, nil).Read().Err; err != nil {
		t.Fatalf("%s: %v", extended, err)
	}
	wantColumns(t, f.su, authAcme, "audited", "id integer", "note text")
	wantColumns(t, f.su, authAcme, "audited_extended", "id integer")

	want := append(slices.Clone(statements), failing, extended)
	var recorded []historyRow
	waitFor(t, "the raw DDL in history", func() bool {
		recorded = slices.DeleteFunc(history(t, conn), func(h historyRow) bool { return h.Operation != "raw_ddl" })
		return len(recorded) >= len(want)
	})
	for _, sql := range want {
		i := slices.IndexFunc(recorded, func(h historyRow) bool { return strings.Contains(h.Statements, sql) })
		if i < 0 {
			t.Errorf("%q is not in history: %+v", sql, recorded)
			continue
		}
		if recorded[i].AppliedBy != authAcmeApp {
			t.Errorf("%q: applied_by %s, want %s", sql, recorded[i].AppliedBy, authAcmeApp)
		}
		lines := logLines(f.p, `"raw DDL"`, sql)
		if len(lines) == 0 {
			t.Errorf("no raw DDL log line for %q", sql)
			continue
		}
		if !strings.Contains(lines[0], authAcmeApp) || !strings.Contains(lines[0], "authz-audited") {
			t.Errorf("raw DDL log line without user or application: %s", lines[0])
		}
	}
	// Another tenant's history holds none of it.
	for _, h := range history(t, f.conn(authGlobexApp, authGlobex)) {
		if h.Operation == "raw_ddl" {
			t.Errorf("globex's history holds acme's %q", h.Statements)
		}
	}
}

// catalogLockKey is the advisory lock key an earlier engine took for its
// metadata catalog ("pgmigrat").
const catalogLockKey = 0x70676d6967726174

// TestAuthorityLocks: locks a tenant can take do not stop another
// tenant's migrations, and the engine's own lock is out of its reach.
func TestAuthorityLocks(t *testing.T) {
	f := newAuthority(t, authSetup{})
	hostile := f.conn(authShared, authAcme)
	for _, key := range []string{
		"hashtextextended('pgmigrate:tenant:" + authGlobex + "', 0)",
		"hashtextextended('pgmigrate:tenant:" + authAcme + "', 0)",
		fmt.Sprint(int64(catalogLockKey)),
	} {
		mustExec(t, hostile, "SELECT pg_advisory_lock("+key+")")
	}
	mustExec(t, hostile, "BEGIN")
	mustExec(t, hostile, "SELECT pg_advisory_xact_lock(hashtextextended('pgmigrate:tenant:"+authGlobex+"', 0))")
	before := f.state()
	for _, sql := range []string{
		"SELECT * FROM pgmigrate.locks FOR UPDATE",
		"LOCK TABLE pgmigrate.locks IN ACCESS EXCLUSIVE MODE",
		"INSERT INTO pgmigrate.locks (org) VALUES ('" + authGlobex + "')",
		"LOCK TABLE pgmigrate.tenants",
		"SELECT * FROM pgmigrate.models FOR SHARE",
		// A forged intent would have the next command or sweep run the
		// operation it names, with the engine's rights.
		"INSERT INTO pgmigrate.intents (op_id, org, operation, spec, plan, phase, undo, started_at) VALUES " +
			"(gen_random_uuid(), '" + authGlobex + "', 'drop_tenant', '{\"Org\":\"" + authGlobex + "\"}', '[]', 0, '{}', now())",
		"SELECT * FROM pgmigrate.intents",
		"LOCK TABLE pgmigrate.intents",
	} {
		other := f.conn(authAcmeApp, authAcme)
		wantServerError(t, execErr(t, other, "BEGIN; "+sql), "42501", sql)
	}
	f.wantSameState(before, "locking the engine's catalog")

	globex := f.conn(authGlobexApp, authGlobex)
	mustExec(t, globex, `CALL migrate.add_field('secret', '{"name":"extra","type":"Int"}')`)
	if got := queryStrings(t, globex, "CALL migrate.list_models()"); !slices.Equal(got, []string{"secret"}) {
		t.Errorf("globex's models %q", got)
	}
	acme := f.conn(authAcmeApp, authAcme)
	mustExec(t, acme, `CALL migrate.add_field('invoice', '{"name":"note","type":"Text"}')`)
	wantColumns(t, f.su, authGlobex, "secret", "id integer", "payload text", "extra integer")
	wantColumns(t, f.su, authAcme, "invoice", "id integer", "title character varying(200)", "note text")
	mustExec(t, hostile, "ROLLBACK")
}

// parkingEngine keeps a command that waits for a table lock retrying
// until its deadline.
const parkingEngine = `  lock_timeout: 100ms
  command_timeout: 8s
  acquire_timeout: 2s
  retry: {max_attempts: 200, delay: 50ms, max_delay: 100ms}
`

// holdTable opens a session of acme's login role that holds an ACCESS
// EXCLUSIVE lock on acme's invoice (its DML privileges allow it) until the
// returned function is called.
func holdTable(t testing.TB, f *authority) (release func()) {
	t.Helper()
	holder := f.conn(authAcmeApp, authAcme)
	mustExec(t, holder, "BEGIN")
	mustExec(t, holder, "LOCK TABLE invoice IN ACCESS EXCLUSIVE MODE")
	return func() { mustExec(t, holder, "ROLLBACK") }
}

// TestAuthorityParkedMigrations: migrations of one org that wait on a lock
// its own session holds do not keep another org from being served.
func TestAuthorityParkedMigrations(t *testing.T) {
	f := newAuthority(t, authSetup{engine: parkingEngine})
	release := holdTable(t, f)
	const parked = 4
	done := make(chan error, parked)
	for i := range parked {
		conn := f.conn(authAcmeApp, authAcme)
		go func() {
			_, err := conn.Exec(context.Background(), fmt.Sprintf(`CALL migrate.add_field('invoice', '{"name":"f%d","type":"Int"}')`, i))
			done <- err
		}()
	}
	waitFor(t, "a migration waiting for the table", func() bool { return lockWaiters(t, f.su) > 0 })

	globex := f.conn(authGlobexApp, authGlobex)
	if got := queryStrings(t, globex, "CALL migrate.list_models()"); !slices.Equal(got, []string{"secret"}) {
		t.Errorf("globex's models %q", got)
	}
	mustExec(t, globex, `CALL migrate.add_field('secret', '{"name":"extra","type":"Int"}')`)
	mustExec(t, globex, `CALL migrate.describe('secret')`)
	mustExec(t, globex, "CALL migrate.drop_field('secret', 'extra', confirm => true)")
	select {
	case err := <-done:
		t.Logf("a parked migration ended before the lock was released: %v", err)
		done <- err
	default:
	}

	release()
	for range parked {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("parked migration: %v", err)
			}
		case <-time.After(timeout):
			t.Fatal("a parked migration did not end once the lock was released")
		}
	}
	wantColumns(t, f.su, authGlobex, "secret", "id integer", "payload text")
	if got := len(tableColumns(t, f.su, authAcme, "invoice")); got != 2+parked {
		t.Errorf("acme's invoice has %d columns, want %d", got, 2+parked)
	}
}

// TestAuthorityCancelledMigrations: parked migrations whose clients cancel
// them or leave hold no engine connection afterwards, and change nothing.
func TestAuthorityCancelledMigrations(t *testing.T) {
	f := newAuthority(t, authSetup{engine: parkingEngine})
	before := f.state()
	release := holdTable(t, f)
	const sessions = 20
	type parked struct {
		pc  *pgconn.PgConn
		mrr *pgconn.MultiResultReader
	}
	var all []parked
	for i := range sessions {
		pc := f.pgConn(authAcmeApp, authAcme)
		// Exec sends the Query before it returns.
		mrr := pc.Exec(context.Background(), fmt.Sprintf(`CALL migrate.add_field('invoice', '{"name":"c%02d","type":"Int"}')`, i))
		all = append(all, parked{pc, mrr})
	}
	waitFor(t, "a migration waiting for the table", func() bool { return lockWaiters(t, f.su) > 0 })
	// Let the proxy read every Query before the cancels race them.
	time.Sleep(300 * time.Millisecond)

	results := make(chan error, sessions/2)
	for i, s := range all {
		if i%2 == 1 {
			s.pc.Conn().Close() // the client leaves
			continue
		}
		if err := s.pc.CancelRequest(testContext(t)); err != nil {
			t.Fatalf("CancelRequest: %v", err)
		}
		go func() {
			_, err := s.mrr.ReadAll()
			results <- err
		}()
	}
	for range sessions / 2 {
		select {
		case err := <-results:
			wantCode(t, err, "57014", "cancelled migration")
		case <-time.After(timeout):
			t.Fatal("a cancelled migration did not answer")
		}
	}
	waitFor(t, "the engine's connections to go idle", func() bool {
		return backends(t, f.su, authEngine, "active", "idle in transaction", "idle in transaction (aborted)") == 0
	})
	release()
	// Nothing runs that could still apply a cancelled migration.
	if n := backends(t, f.su, authEngine, "active", "idle in transaction"); n != 0 {
		t.Errorf("%d engine backends busy after the lock was released", n)
	}
	f.wantSameState(before, "cancelled migrations")
	mustExec(t, f.conn(authAcmeApp, authAcme), `CALL migrate.add_field('invoice', '{"name":"after","type":"Int"}')`)
	wantColumns(t, f.su, authAcme, "invoice", "id integer", "title character varying(200)", "after integer")
}

// TestAuthorityDryRunFlood: dry runs are not serialised per tenant like
// migrations, but a tenant flooding the engine with dry runs that wait on
// a lock it holds must not keep another tenant from being served.
func TestAuthorityDryRunFlood(t *testing.T) {
	f := newAuthority(t, authSetup{engine: `  lock_timeout: 3s
  command_timeout: 8s
  acquire_timeout: 1s
  retry: {max_attempts: 2, delay: 50ms, max_delay: 100ms}
`})
	release := holdTable(t, f)
	defer release()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 30 {
		conn := f.conn(authAcmeApp, authAcme)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				conn.Exec(ctx, `CALL migrate.add_field('invoice', '{"name":"x","type":"Int"}', dry_run => true)`)
				cancel()
			}
		}()
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	// Until the flood has filled what it can.
	deadline := time.Now().Add(3 * time.Second)
	for lockWaiters(t, f.su) < 20 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%d engine backends wait for acme's table", lockWaiters(t, f.su))

	globex := f.conn(authGlobexApp, authGlobex)
	for _, sql := range []string{
		"CALL migrate.list_models()",
		`CALL migrate.add_field('secret', '{"name":"extra","type":"Int"}')`,
	} {
		if err := execErr(t, globex, sql); err != nil {
			t.Errorf("globex's %s while acme floods the engine: %v", sql, err)
		}
	}
}

// TestAuthorityHostileCommandTexts: texts built to break the proxy's
// reading of migrate commands are refused, and the proxy stays up.
func TestAuthorityHostileCommandTexts(t *testing.T) {
	f := newAuthority(t, authSetup{})
	before := f.state()
	// works fails t unless the session pc, and a session of another org,
	// still answer.
	works := func(t *testing.T, pc *pgconn.PgConn, what string) {
		t.Helper()
		if _, err := pc.Exec(testContext(t), "SELECT 1").ReadAll(); err != nil {
			t.Errorf("the session after %s: %v", what, err)
		}
		mustWork(t, f.conn(authGlobexApp, authGlobex))
	}

	t.Run("parameter numbers", func(t *testing.T) {
		pc := f.pgConn(authAcmeApp, authAcme)
		for _, sql := range []string{
			"CALL migrate.describe($2147483647)",
			"CALL migrate.add_field($1, $65536)",
			"CALL migrate.list_models(org => $2147483647)",
		} {
			_, err := pc.Prepare(testContext(t), "", sql, nil)
			wantProxyError(t, err, "42P02", "Prepare "+sql)
			works(t, pc, sql)
		}
		_, err := pc.Prepare(testContext(t), "", "CALL migrate.describe($99999999999999999999)", nil)
		if err == nil {
			t.Error("a parameter number past int64: prepared")
		}
		works(t, pc, "a parameter number past int64")
	})

	t.Run("40 KiB command", func(t *testing.T) {
		pc := f.pgConn(authAcmeApp, authAcme)
		_, err := pc.Exec(testContext(t), "CALL migrate.list_models() /*"+strings.Repeat(" ", 40<<10)+"*/").ReadAll()
		if err != nil {
			t.Errorf("a 40 KiB list_models: %v", err)
		}
		works(t, pc, "a 40 KiB command")
	})

	t.Run("2 MiB command", func(t *testing.T) {
		big := "CALL migrate.describe('" + strings.Repeat("x", 2<<20) + "')"
		pc := f.pgConn(authAcmeApp, authAcme)
		_, err := pc.Exec(testContext(t), big).ReadAll()
		wantProxyError(t, err, "54000", "a 2 MiB command in a Query")
		works(t, pc, "a 2 MiB command in a Query")

		pc = f.pgConn(authAcmeApp, authAcme)
		_, err = pc.Prepare(testContext(t), "", big, nil)
		wantProxyError(t, err, "54000", "a 2 MiB command in a Parse")
		works(t, pc, "a 2 MiB command in a Parse")

		pc = f.pgConn(authAcmeApp, authAcme)
		_, err = pc.Exec(testContext(t), "CALL migrate.list_models() /*"+strings.Repeat(" ", 2<<20)+"*/").ReadAll()
		wantProxyError(t, err, "54000", "a command padded to 2 MiB")
		works(t, pc, "a command padded to 2 MiB")
	})

	// Texts longer than what the relay loop checks itself are checked
	// off it, with the same verdicts.
	t.Run("long texts", func(t *testing.T) {
		pad := strings.Repeat("x", 64<<10)
		pc := f.pgConn(authAcmeApp, authAcme)
		results, err := pc.Exec(testContext(t), "SELECT length('"+pad+"')").ReadAll()
		if err != nil || string(results[0].Rows[0][0]) != "65536" {
			t.Errorf("a long ordinary query: %v", err)
		}
		hidden := "SELECT '" + pad + `'; SET ROLE ` + authIdent(authGlobex) + "; --'"
		_, err = pc.Exec(testContext(t), hidden).ReadAll()
		wantProxyError(t, err, "42501", "a role change after a long string")
		_, err = pc.Prepare(testContext(t), "", "SET ROLE "+authIdent(authGlobex)+" /*"+pad+"*/", nil)
		wantProxyError(t, err, "42501", "a long role change in a Parse")
		results, err = pc.Exec(testContext(t), "CALL migrate.list_models() /*"+pad+"*/; ").ReadAll()
		if err != nil || len(results[0].Rows) == 0 {
			t.Errorf("a long migrate command: %v", err)
		}
		results, err = pc.Exec(testContext(t), "SELECT current_user").ReadAll()
		if err != nil || string(results[0].Rows[0][0]) != authAcme {
			t.Errorf("after the long texts the session runs as %v (%v)", results, err)
		}
		works(t, pc, "long texts")
	})

	t.Run("database-qualified", func(t *testing.T) {
		conn := f.conn(authAcmeApp, authAcme)
		for _, sql := range []string{
			"CALL " + authIdent(f.db) + ".migrate.list_models()",
			"CALL " + authIdent(f.db) + `."migrate".verify()`,
			"CALL migrate.list_models.x()",
		} {
			wantProxyError(t, execErr(t, conn, sql), "0A000", sql)
			wantProxyError(t, parseErr(t, conn, sql), "0A000", "Parse: "+sql)
		}
		// A Unicode-escaped schema name is the proxy's to answer, one way
		// or another: PostgreSQL never sees it.
		for _, sql := range []string{`CALL U&"migrate".list_models()`, `CALL U&"\006Digrate".list_models()`, `CALL U&"!006Digrate" UESCAPE '!' .list_models()`} {
			for _, err := range []error{execErr(t, conn, sql), parseErr(t, conn, sql)} {
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) && pgErr.Routine != "" {
					t.Errorf("%s reached PostgreSQL: %s %s", sql, pgErr.Code, pgErr.Message)
				}
			}
		}
		works(t, conn.PgConn(), "database-qualified calls")
	})

	t.Run("standard_conforming_strings", func(t *testing.T) {
		pc := f.pgConn(authAcmeApp, authAcme)
		hidden := `SELECT '\''; CALL migrate.list_models(); --'`
		for _, setting := range []string{"off", "on"} {
			if _, err := pc.Exec(testContext(t), "SET standard_conforming_strings = "+setting).ReadAll(); err != nil {
				t.Fatal(err)
			}
			_, err := pc.Exec(testContext(t), hidden).ReadAll()
			wantProxyError(t, err, "0A000", "standard_conforming_strings "+setting+": "+hidden)
			works(t, pc, hidden)
		}
		// Set in the same Query as the command.
		_, err := pc.Exec(testContext(t), `SET standard_conforming_strings = off; SELECT '\''; CALL migrate.list_models(); --'`).ReadAll()
		wantProxyError(t, err, "0A000", "the setting and the hidden command in one Query")
		works(t, pc, "the setting and the command in one Query")
	})
	f.wantSameState(before, "hostile command texts")
}

// TestAuthorityClientEncoding: in a client encoding whose characters may
// end with the byte of a backslash (SJIS, BIG5, GBK, GB18030), a quote
// after such a character closes the string for PostgreSQL, which reads
// the text after converting it. A statement after it must not slip past
// the proxy.
func TestAuthorityClientEncoding(t *testing.T) {
	f := newAuthority(t, authSetup{policy: "  raw_ddl: deny\n"})
	before := f.state()
	// 0x95 0x5c is one SJIS character (U+8868).
	const sjisChar = "\x95\x5c"
	for _, c := range []struct {
		what, sql, code string
	}{
		{"a migrate command", "SELECT E'" + sjisChar + "'; CALL migrate.list_models(); --'", "22021"},
		{"a role change", "SELECT E'" + sjisChar + "'; SET ROLE " + authIdent(authGlobex) + "; --'", "42501"},
		{"DDL", "SELECT E'" + sjisChar + "'; CREATE TABLE planted (id int); --'", "42501"},
	} {
		pc := f.pgConn(authShared, authAcme)
		if _, err := pc.Exec(testContext(t), "SET client_encoding = 'SJIS'").ReadAll(); err != nil {
			t.Fatal(err)
		}
		_, err := pc.Exec(testContext(t), c.sql).ReadAll()
		wantProxyError(t, err, c.code, c.what+" after an SJIS character ending in 0x5c")
		results, err := pc.Exec(testContext(t), "SELECT current_user").ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if got := string(results[0].Rows[0][0]); got != authAcme {
			t.Errorf("%s: the session now runs as %s", c.what, got)
		}
	}
	f.wantSameState(before, "statements hidden by the client encoding")
}

// TestAuthorityManagedTables: a tenant uses the tables the engine makes
// at once, cannot change them but through the engine, and history says
// who asked.
func TestAuthorityManagedTables(t *testing.T) {
	f := newAuthority(t, authSetup{noSeed: true})
	conn := f.conn(authAcmeApp, authAcme, "application_name", "authz-billing")
	mustExec(t, conn, `CALL migrate.create_model('ledger', '[{"name":"id","type":"Int"},{"name":"amount","type":"Float"}]')`)
	for _, sql := range []string{
		"INSERT INTO ledger (id, amount) VALUES (1, 1.5), (2, 2.5), (3, 3.5)",
		"UPDATE ledger SET amount = amount * 2 WHERE id = 2",
		"DELETE FROM ledger WHERE id = 3",
		"SELECT id, amount FROM ledger FOR UPDATE",
	} {
		mustExec(t, conn, sql)
	}
	if got := queryValue[float64](t, conn, "SELECT sum(amount) FROM ledger"); got != 6.5 {
		t.Errorf("sum(amount) = %v, want 6.5", got)
	}
	if owner := queryValue[string](t, f.su, "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = $1::regclass", pgx.Identifier{authAcme, "ledger"}.Sanitize()); owner != authEngine {
		t.Errorf("ledger is owned by %s, want %s", owner, authEngine)
	}
	before := f.state()
	for _, sql := range []string{
		"ALTER TABLE ledger ADD COLUMN planted int",
		"ALTER TABLE ledger DROP COLUMN amount",
		"ALTER TABLE ledger OWNER TO " + authIdent(authAcme),
		"ALTER TABLE ledger ENABLE ROW LEVEL SECURITY",
		"DROP TABLE ledger",
		"CREATE INDEX ON ledger (amount)",
		"CREATE POLICY planted ON ledger USING (true)",
		"CREATE TRIGGER planted BEFORE INSERT ON ledger FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
		"CREATE RULE planted AS ON INSERT TO ledger DO INSTEAD NOTHING",
		"COMMENT ON TABLE ledger IS 'planted'",
	} {
		wantServerError(t, execErr(t, conn, sql), "42501", sql)
	}
	f.wantSameState(before, "DDL on a managed table")
	mustExec(t, conn, "TRUNCATE ledger")

	var found bool
	for _, h := range history(t, conn) {
		if h.Model != nil && *h.Model == "ledger" && h.Operation == "create_model" {
			found = true
			if h.AppliedBy != authAcmeApp {
				t.Errorf("history: create_model applied_by %s, want %s", h.AppliedBy, authAcmeApp)
			}
		}
	}
	if !found {
		t.Errorf("history has no create_model of ledger: %+v", history(t, conn))
	}
	var appliedBy, application string
	if err := f.su.QueryRow(testContext(t), "SELECT applied_by, coalesce(application, '') FROM pgmigrate.history WHERE org = $1 AND model = 'ledger'", authAcme).
		Scan(&appliedBy, &application); err != nil {
		t.Fatal(err)
	}
	if appliedBy != authAcmeApp || application != "authz-billing" {
		t.Errorf("pgmigrate.history: applied_by %q, application %q; want %q, %q", appliedBy, application, authAcmeApp, "authz-billing")
	}
}

// TestAuthorityCreateTenant: create_tenant adopts a schema without
// touching its data, and the login role it makes reaches its own org
// only.
func TestAuthorityCreateTenant(t *testing.T) {
	const (
		initech = "authz-initech"
		newco   = "authz-newco"
		login   = newco + ".login"
	)
	f := newAuthority(t, authSetup{})
	f.roles = append(f.roles, login, newco, initech)
	for _, r := range []string{login, newco, initech} {
		authExec(t, "postgres", "DROP ROLE IF EXISTS "+authIdent(r))
	}
	legacy := pgx.Identifier{initech, "legacy"}.Sanitize()
	f.asEngine(f.db, fmt.Sprintf("CREATE SCHEMA %s; CREATE TABLE %s (id int PRIMARY KEY, name text); INSERT INTO %[2]s VALUES (1, 'a'), (2, 'b'), (3, 'c')",
		authIdent(initech), legacy))
	rows := func() []string {
		return queryStrings(t, f.su, "SELECT t::text FROM "+legacy+" t ORDER BY id")
	}
	// A tenant can neither register an org nor make the proxy route one.
	hostile := f.conn(authShared, authAcme)
	wantServerError(t, execErr(t, hostile, "INSERT INTO pgmigrate.tenants (org, schema) VALUES ('authz-fake', "+authLiteral(authGlobex)+")"), "42501", "registering an org")
	mustExec(t, hostile, `NOTIFY pgmigrate, '{"org":"authz-fake","schema":"`+authGlobex+`"}'`)
	mustExec(t, hostile, "NOTIFY pgmigrate, 'authz-fake'")
	_, err := f.tryConn(authShared, "authz-fake")
	wantFatal(t, err, "3D000", "an org announced by a tenant")
	rowsBefore := rows()
	admin := f.admin()

	var status, org, statements string
	if err := admin.QueryRow(testContext(t), "CALL migrate.create_tenant("+authLiteral(initech)+")").
		Scan(&status, &org, nil, nil, &statements, nil, nil, nil, nil); err != nil {
		t.Fatalf("create_tenant on an existing schema: %v", err)
	}
	if status != "applied" || org != initech {
		t.Errorf("create_tenant: status %s org %s, want applied %s", status, org, initech)
	}
	if got := rows(); !slices.Equal(got, rowsBefore) {
		t.Errorf("legacy rows %q, were %q", got, rowsBefore)
	}
	wantColumns(t, f.su, initech, "legacy", "id integer", "name text")
	if !queryValue[bool](t, f.su, "SELECT has_table_privilege($1, $2, 'SELECT')", initech, legacy) {
		t.Errorf("the tenant role %s cannot read its adopted table", initech)
	}
	if queryValue[bool](t, f.su, "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", initech) {
		t.Errorf("the tenant role %s can log in", initech)
	}

	var gotLogin, password *string
	if err := admin.QueryRow(testContext(t), "CALL migrate.create_tenant("+authLiteral(newco)+", login => true)").
		Scan(&status, &org, nil, nil, &statements, nil, nil, &gotLogin, &password); err != nil {
		t.Fatalf("create_tenant with a login: %v", err)
	}
	if status != "applied" || gotLogin == nil || *gotLogin != login || password == nil || len(*password) < 16 {
		t.Fatalf("create_tenant with a login: status %s, login %v, password %v", status, gotLogin, password)
	}
	secret := *password
	if strings.Contains(statements, secret) || strings.Contains(f.p.logs.String(), secret) {
		t.Error("the password shows in the statements or the log")
	}
	if n := queryValue[int](t, f.su, "SELECT count(*)::int FROM pgmigrate.history WHERE array_to_string(statements, ' ') LIKE '%' || $1 || '%'", secret); n > 0 {
		t.Error("the password is in pgmigrate.history")
	}
	if v := queryValue[string](t, f.su, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", login); !strings.HasPrefix(v, "SCRAM-SHA-256$") {
		t.Errorf("%s's password is stored as %.20s..., want a SCRAM verifier", login, v)
	}

	connect := func(database string, opts ...func(*pgx.ConnConfig)) (*pgx.Conn, error) {
		cfg := parseConfig(t, f.p.url(login, secret, database), opts...)
		conn, err := pgx.ConnectConfig(testContext(t), cfg)
		if err == nil {
			t.Cleanup(func() { conn.Close(context.Background()) })
		}
		return conn, err
	}
	// The tenant made by create_tenant is routed once the config lists it
	// (routing from the catalog alone is the tenant registry's).
	f.reload("", "  - org: "+newco+"\n")
	conn, err := connect(newco)
	if err != nil {
		t.Fatalf("%s through the proxy with the org in the config: %v", login, err)
	}
	if got := queryValue[string](t, conn, "SELECT current_user"); got != newco {
		t.Errorf("%s's session runs as %s, want %s", login, got, newco)
	}
	mustExec(t, conn, `CALL migrate.create_model('thing', '[{"name":"id","type":"Int"}]')`)
	mustExec(t, conn, "INSERT INTO thing VALUES (1)")

	_, err = connect(authAcme)
	wantFatal(t, err, "42501", login+" to acme")
	_, err = connect(f.db)
	wantFatal(t, err, "3D000", login+" to the real database")
	cfg := parseConfig(t, f.p.url(login, "wrong", newco))
	_, err = pgx.ConnectConfig(testContext(t), cfg)
	wantFatal(t, err, "28P01", login+" with a wrong password")
}

// TestAuthorityProvisioningFailure: a config tenant the engine role
// cannot provision is named in the log and keeps /readyz failing; the
// other tenants are served.
func TestAuthorityProvisioningFailure(t *testing.T) {
	const broken = "authz-broken"
	f := newAuthority(t, authSetup{
		tenants: "  - org: " + broken + "\n",
		before: func(f *authority) {
			f.roles = append(f.roles, broken)
			authExec(t, "postgres", "DROP ROLE IF EXISTS "+authIdent(broken))
			authExec(t, f.db, fmt.Sprintf("CREATE SCHEMA %[1]s; CREATE TABLE %[1]s.kept (id int); INSERT INTO %[1]s.kept VALUES (1)", authIdent(broken)))
		},
	})
	lines := logLines(f.p, "tenant cannot be provisioned", broken)
	if len(lines) == 0 {
		t.Errorf("no log line names %s as a tenant that cannot be provisioned", broken)
	}
	if code := authGet(t, f.p, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz = %d, want 503", code)
	}
	for _, c := range []struct{ user, org string }{{authAcmeApp, authAcme}, {authGlobexApp, authGlobex}} {
		conn := f.conn(c.user, c.org)
		if got := queryStrings(t, conn, "CALL migrate.list_models()"); len(got) != 1 {
			t.Errorf("%s's models: %q", c.org, got)
		}
	}
	if got := queryStrings(t, f.su, "SELECT pg_get_userbyid(nspowner) || ' ' || coalesce(nspacl::text, '-') FROM pg_namespace WHERE nspname = $1", broken); !slices.Equal(got, []string{"postgres -"}) {
		t.Errorf("schema %s is now %q", broken, got)
	}
	if queryValue[int](t, f.su, "SELECT count(*)::int FROM "+pgx.Identifier{broken, "kept"}.Sanitize()) != 1 {
		t.Errorf("%s.kept changed", broken)
	}
	if queryValue[bool](t, f.su, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", broken) {
		t.Errorf("a tenant role %s was left behind", broken)
	}

	// Once the engine's role may act on the schema, the proxy provisions
	// the tenant by itself: no restart, no SIGHUP.
	authExec(t, f.db, "ALTER SCHEMA "+authIdent(broken)+" OWNER TO "+authIdent(authEngine))
	waitFor(t, "/readyz to answer 200 after the schema's owner changed", func() bool {
		return authGet(t, f.p, "/readyz") == http.StatusOK
	})
	if !queryValue[bool](t, f.su, "SELECT EXISTS (SELECT FROM pgmigrate.tenants WHERE org = $1)", broken) {
		t.Errorf("%s is not registered after provisioning succeeded", broken)
	}
}

// TestAuthorityPosture: the posture check reports what weakens the
// tenants' separation, at start in the log and to an admin's verify().
func TestAuthorityPosture(t *testing.T) {
	f := newAuthority(t, authSetup{
		policy: "  raw_ddl: deny\n",
		before: func(f *authority) {
			f.asEngine(f.db, fmt.Sprintf("CREATE SCHEMA %[1]s; GRANT USAGE ON SCHEMA %[1]s TO PUBLIC", authIdent(authGlobex)))
		},
	})
	for _, object := range []string{authShared, authGlobex} {
		lines := logLines(f.p, `"WARN"`, "posture:", `"object":"`+object+`"`)
		if len(lines) == 0 {
			t.Errorf("no posture WARN at start for %s", object)
		}
	}
	// A tenant role given CREATE behind the proxy's back.
	authExec(t, f.db, fmt.Sprintf("GRANT CREATE ON SCHEMA %s TO %s", authIdent(authAcme), authIdent(authAcme)))

	findings := map[string]string{} // object: kinds
	rows, err := f.admin().Query(testContext(t), "CALL migrate.verify()")
	if err != nil {
		t.Fatal(err)
	}
	var object, kind, detail string
	var model *string
	if _, err := pgx.ForEachRow(rows, []any{&model, &object, &kind, &detail}, func() error {
		findings[object] += kind + ";"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{authShared, authGlobex, authAcme} {
		if findings[want] == "" {
			t.Errorf("verify() in an admin session does not report %s: %v", want, findings)
		}
	}
	kinds := map[string]bool{findings[authShared]: true, findings[authGlobex]: true, findings[authAcme]: true}
	if len(kinds) != 3 {
		t.Errorf("the three findings are not of three kinds: %v", findings)
	}
	for _, clean := range []string{authAcmeApp, authGlobexApp, authReader, authOutsider, authEngine} {
		if k := findings[clean]; k != "" {
			t.Errorf("verify() reports %s: %s", clean, k)
		}
	}
	// A tenant session's verify() is about its own models only.
	tenantRows, err := f.conn(authShared, authAcme).Query(testContext(t), "CALL migrate.verify()")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.ForEachRow(tenantRows, []any{&model, new(*string), &kind, &detail}, func() error {
		if strings.Contains(detail, authShared) || strings.Contains(detail, authGlobex) {
			t.Errorf("a tenant session's verify() reports %q", detail)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
