package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestPipelinedBeginRefusesMigrate: a BEGIN sent in the same pipeline (one
// Sync) as a migrate command, as pgjdbc does with autocommit off, puts the
// command inside a transaction block: 25001, nothing migrated, and the
// client's ROLLBACK works. Without the BEGIN the same pipeline migrates.
// Over plain and TLS connections.
func TestPipelinedBeginRefusesMigrate(t *testing.T) {
	_, p := tlsTenant(t)
	create := `CALL migrate.create_model($1, '[{"name":"id","type":"Int"}]')`
	for _, sslmode := range []string{"disable", "require"} {
		t.Run(sslmode, func(t *testing.T) {
			conn := p.connect(t, "postgres", "", "acme", "sslmode", sslmode)
			ctx := testContext(t)
			model := "refused_" + sslmode
			b := &pgx.Batch{}
			b.Queue("BEGIN")
			b.Queue("CREATE TEMP TABLE scratch (n int)")
			b.Queue(create, model)
			err := conn.SendBatch(ctx, b).Close()
			wantPgError(t, err, "25001")
			if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
				t.Fatalf("rollback: %v", err)
			}
			if exists := queryValue[bool](t, conn, "SELECT to_regclass($1) IS NOT NULL", "acme."+model); exists {
				t.Errorf("the refused create_model made acme.%s", model)
			}

			model = "migrated_" + sslmode
			b = &pgx.Batch{}
			b.Queue("SELECT 1")
			b.Queue(create, model)
			if err := conn.SendBatch(ctx, b).Close(); err != nil {
				t.Fatalf("pipeline without BEGIN: %v", err)
			}
			if exists := queryValue[bool](t, conn, "SELECT to_regclass($1) IS NOT NULL", "acme."+model); !exists {
				t.Errorf("create_model in a pipeline without BEGIN did not make acme.%s", model)
			}
		})
	}
}

// TestUpstreamLostWhileMigrateWaits: a migrate command pipelined after a
// statement still running waits for its answer; when the upstream dies
// meanwhile, the session ends with an error instead of hanging. Over plain
// and TLS connections.
func TestUpstreamLostWhileMigrateWaits(t *testing.T) {
	tn, p := tlsTenant(t)
	for _, sslmode := range []string{"disable", "require"} {
		t.Run(sslmode, func(t *testing.T) {
			conn := p.connect(t, "postgres", "", "acme", "sslmode", sslmode)
			pid := backendPID(t, conn)
			done := make(chan error, 1)
			go func() {
				b := &pgx.Batch{}
				b.Queue(sleep60)
				b.Queue(`CALL migrate.create_model('waiting', '[{"name":"id","type":"Int"}]')`)
				done <- conn.SendBatch(testContext(t), b).Close()
			}()
			waitRunning(t, tn.db, sleep60)
			if !queryValue[bool](t, directConn(t, tn.db), "SELECT pg_terminate_backend($1)", pid) {
				t.Fatal("the session's backend was not terminated")
			}
			select {
			case err := <-done:
				expectUpstreamLost(t, "the pipeline", err)
			case <-testContext(t).Done():
				t.Fatal("the session hung after its backend was terminated")
			}
		})
	}
}

// TestMigrateErrorAbortsPipeline: a migrate command that fails in a
// pipeline aborts the pipeline's transaction as a failing statement does
// in PostgreSQL: an INSERT before it in the same Sync is not kept, in an
// implicit transaction or in one a pipelined BEGIN opened (whose COMMIT
// then rolls back), and the session goes on. Over plain and TLS
// connections, and directly against PostgreSQL for comparison.
func TestMigrateErrorAbortsPipeline(t *testing.T) {
	tn, p := tlsTenant(t)
	tenantTable(t, tn, "kept")
	failing := map[bool]struct{ sql, code string }{
		false: {"CALL migrate.describe('no_such_model')", "42P01"}, // through the proxy
		true:  {"SELECT 1 / 0", "22012"},                           // directly
	}
	for _, tc := range []struct {
		name   string
		direct bool
		conn   func(t *testing.T) *pgx.Conn
	}{
		{"plain", false, func(t *testing.T) *pgx.Conn { return p.connect(t, "postgres", "", "acme", "sslmode", "disable") }},
		{"tls", false, func(t *testing.T) *pgx.Conn { return p.connect(t, "postgres", "", "acme", "sslmode", "require") }},
		{"postgres", true, func(t *testing.T) *pgx.Conn { return directConn(t, tn.db) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := tc.conn(t)
			ctx := testContext(t)
			for _, begin := range []bool{false, true} {
				b := &pgx.Batch{}
				if begin {
					b.Queue("BEGIN")
				}
				b.Queue("INSERT INTO acme.kept VALUES (1)")
				b.Queue(failing[tc.direct].sql)
				code := failing[tc.direct].code
				if begin && !tc.direct {
					code = "25001" // a migrate command refused in a transaction block
				}
				wantPgError(t, conn.SendBatch(ctx, b).Close(), code)
				if begin {
					if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
						t.Fatalf("commit: %v", err)
					}
				}
				if n := queryValue[int](t, conn, "SELECT count(*) FROM acme.kept"); n != 0 {
					t.Errorf("begin %v: %d rows kept, want none", begin, n)
				}
			}
		})
	}
}

// TestCopyThenMigrateInOneWrite: a COPY FROM STDIN, a migrate command and
// the copy's data sent in one write get what PostgreSQL answers them (a
// Query in the middle of a copy is a protocol violation, FATAL), through
// plain and TLS connections; nothing hangs.
func TestCopyThenMigrateInOneWrite(t *testing.T) {
	tn, p := tlsTenant(t)
	tenantTable(t, tn, "copied")
	var write []byte
	for _, m := range []pgproto3.FrontendMessage{
		&pgproto3.Query{String: "COPY acme.copied FROM STDIN"},
		&pgproto3.Query{String: "CALL migrate.describe('copied')"},
		&pgproto3.CopyData{Data: []byte("1\n")},
		&pgproto3.CopyDone{},
	} {
		write, _ = m.Encode(write)
	}
	// answers lists what comes back, up to the end of the connection or
	// a ReadyForQuery after which the session is asked for the rows.
	answers := func(c *rawConn) string {
		c.write(write)
		var got []string
		for {
			msg, err := c.fe.Receive()
			switch m := msg.(type) {
			case nil:
				if !isClosedErr(err) {
					t.Fatal(err)
				}
				return strings.Join(append(got, "closed"), " ")
			case *pgproto3.ErrorResponse:
				got = append(got, m.Severity+" "+m.Code)
			case *pgproto3.ReadyForQuery:
				return strings.Join(got, " ") + " | rows " + strings.Join(c.query("SELECT count(*) FROM acme.copied"), ",")
			default:
				got = append(got, fmt.Sprintf("%T", m))
			}
		}
	}
	direct := dialRaw(t, cluster.Addr())
	direct.login("postgres", tn.db)
	want := answers(direct)
	for _, sslmode := range []string{"disable", "require"} {
		conn := p.connect(t, "postgres", "", "acme", "sslmode", sslmode)
		raw := rawOf(t, conn)
		if got := answers(raw); got != want {
			t.Errorf("%s: answers %s, PostgreSQL's %s", sslmode, got, want)
		}
	}
}

// TestManyParsesInOneWrite: 700 named Parses of migrate commands and a
// Sync in one write (some ending exactly at the end of the proxy's read
// buffer) are each answered, through plain and TLS connections.
func TestManyParsesInOneWrite(t *testing.T) {
	_, p := tlsTenant(t)
	const parses = 700
	const proxyBuffer = 32 << 10
	for _, sslmode := range []string{"disable", "require"} {
		t.Run(sslmode, func(t *testing.T) {
			conn := p.connect(t, "postgres", "", "acme", "sslmode", sslmode)
			raw := rawOf(t, conn)
			var write []byte
			for i := range parses {
				parse := &pgproto3.Parse{Name: fmt.Sprintf("s%03d", i), Query: "CALL migrate.list_models() -- " + strings.Repeat("x", i%40)}
				size := len(parse.Name) + len(parse.Query) + 9 // header, two NULs, no parameter types
				if before := len(write); before < proxyBuffer && before+size > proxyBuffer {
					// This one ends exactly at the end of the buffer.
					parse.Query = parse.Query[:len(parse.Query)-(before+size-proxyBuffer)]
				}
				write, _ = parse.Encode(write)
			}
			write, _ = (&pgproto3.Sync{}).Encode(write)
			raw.write(write)
			complete := 0
			for {
				switch m := raw.receive().(type) {
				case *pgproto3.ParseComplete:
					complete++
				case *pgproto3.ErrorResponse:
					t.Fatalf("error %s: %s", m.Code, m.Message)
				case *pgproto3.ReadyForQuery:
					if complete != parses {
						t.Fatalf("%d ParseComplete, want %d", complete, parses)
					}
					return
				}
			}
		})
	}
}

// TestMigrateErrorFailsTransaction: inside a transaction block, a migrate
// command that fails, by the simple or the extended protocol, fails the
// transaction as a failing statement does in PostgreSQL: the next
// statement gets 25P02 and COMMIT rolls back, so a row inserted before is
// not kept. Over plain and TLS connections, and directly against
// PostgreSQL for comparison.
func TestMigrateErrorFailsTransaction(t *testing.T) {
	tn, p := tlsTenant(t)
	tenantTable(t, tn, "kept")
	for _, tc := range []struct {
		name    string
		conn    func(t *testing.T) *pgx.Conn
		failing string
	}{
		{"plain", func(t *testing.T) *pgx.Conn { return p.connect(t, "postgres", "", "acme", "sslmode", "disable") }, "CALL migrate.describe($1)"},
		{"tls", func(t *testing.T) *pgx.Conn { return p.connect(t, "postgres", "", "acme", "sslmode", "require") }, "CALL migrate.describe($1)"},
		{"postgres", func(t *testing.T) *pgx.Conn { return directConn(t, tn.db) }, "SELECT 1 / length($1::text)::int / 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := tc.conn(t)
			ctx := testContext(t)
			for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
				if _, err := conn.Exec(ctx, "BEGIN; INSERT INTO acme.kept VALUES (1)"); err != nil {
					t.Fatal(err)
				}
				if _, err := conn.Exec(ctx, tc.failing, mode, "no_such_model"); err == nil {
					t.Fatalf("%v: the failing statement succeeded", mode)
				}
				_, err := conn.Exec(ctx, "SELECT 1")
				wantPgError(t, err, "25P02")
				tag, err := conn.Exec(ctx, "COMMIT")
				if err != nil || tag.String() != "ROLLBACK" {
					t.Fatalf("%v: COMMIT: %q, %v; want ROLLBACK", mode, tag, err)
				}
				if n := queryValue[int](t, conn, "SELECT count(*) FROM acme.kept"); n != 0 {
					t.Errorf("%v: %d rows kept, want none", mode, n)
				}
			}
		})
	}
}

// TestTakenAfterCopyEnd: a migrate command, or a statement the proxy
// refuses, sent after the end of a COPY FROM STDIN in the same write is
// answered by the proxy once the copy is over, never passed to PostgreSQL
// as the copy's. Over plain and TLS connections.
func TestTakenAfterCopyEnd(t *testing.T) {
	tn, p := tlsTenant(t)
	tenantTable(t, tn, "copied")
	for _, sslmode := range []string{"disable", "require"} {
		conn := p.connect(t, scramUser, userPassword, "acme", "sslmode", sslmode)
		raw := rawOf(t, conn)
		for _, m := range []pgproto3.FrontendMessage{
			&pgproto3.Query{String: "COPY acme.copied FROM STDIN"},
			&pgproto3.CopyData{Data: []byte("1\n")},
			&pgproto3.CopyDone{},
			&pgproto3.Query{String: "CALL migrate.list_models()"},
			&pgproto3.Query{String: "SET ROLE postgres"},
		} {
			raw.send(m)
		}
		if got, want := answersUpTo(raw, 3), "COPY 1 ZI CALL ZI 42501 ZI"; got != want {
			t.Errorf("%s: %q, want %s", sslmode, got, want)
		}
	}
}

// TestQueryIgnoredWhileSkipping: after an error in a pipeline, PostgreSQL
// ignores everything up to the Sync, a simple Query included; so does the
// proxy with a migrate command there, whose refusal must not fail what
// follows. Compared with PostgreSQL directly.
func TestQueryIgnoredWhileSkipping(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	var write []byte
	for _, m := range []pgproto3.FrontendMessage{
		&pgproto3.Parse{Query: "SELECT 1 / 0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Query{String: "CALL migrate.list_models()"},
		&pgproto3.Sync{},
		&pgproto3.Query{String: "ROLLBACK"},
		&pgproto3.Query{String: "SELECT 'after'"},
	} {
		write, _ = m.Encode(write)
	}
	answers := func(c *rawConn) string {
		c.query("BEGIN")
		c.write(write)
		return answersUpTo(c, 3)
	}
	direct := dialRaw(t, cluster.Addr())
	direct.login("postgres", tn.db)
	want := answers(direct)
	proxied := dialRaw(t, p.addr)
	proxied.login("postgres", "acme")
	if got := answers(proxied); got != want {
		t.Errorf("through the proxy %s, PostgreSQL %s", got, want)
	}
}

// tlsTenant is tenant acme and a proxy serving it that offers TLS.
func tlsTenant(t *testing.T) (tenants, *proxyProc) {
	t.Helper()
	tn := newTenants(t, "acme")
	certFile, keyFile := selfSignedCert(t)
	return tn, startProxy(t, tn.config(fmt.Sprintf("tls:\n  cert_file: %q\n  key_file: %q\n", certFile, keyFile)))
}

// tenantTable creates table acme.name (n int), which the tenant may use.
func tenantTable(t *testing.T, tn tenants, name string) {
	t.Helper()
	if _, err := directConn(t, tn.db).Exec(testContext(t), "CREATE TABLE acme."+name+" (n int); GRANT ALL ON acme."+name+" TO acme"); err != nil {
		t.Fatal(err)
	}
}

// answersUpTo reads answers up to the ready-th ReadyForQuery, listing
// command tags, error codes and ReadyForQuery statuses ("Z" and status).
func answersUpTo(c *rawConn, ready int) string {
	c.t.Helper()
	var got []string
	for ready > 0 {
		switch m := c.receive().(type) {
		case *pgproto3.CommandComplete:
			got = append(got, string(m.CommandTag))
		case *pgproto3.ErrorResponse:
			got = append(got, m.Code)
		case *pgproto3.ReadyForQuery:
			got = append(got, "Z"+string(m.TxStatus))
			ready--
		}
	}
	return strings.Join(got, " ")
}
