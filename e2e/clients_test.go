package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/lib/pq"
)

func TestPgxSimpleProtocol(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	conn := p.connect(t, scramUser, userPassword, "acme", "default_query_exec_mode", "simple_protocol")
	ctx := testContext(t)

	var (
		text   string
		number int64
		schema string
	)
	err := conn.QueryRow(ctx, "SELECT $1::text, $2::int8 * 2, current_schema()", "it's; --", int64(21)).Scan(&text, &number, &schema)
	if err != nil {
		t.Fatal(err)
	}
	if text != "it's; --" || number != 42 || schema != "acme" {
		t.Fatalf("got %q, %d, %q", text, number, schema)
	}

	results, err := conn.PgConn().Exec(ctx, "SELECT 1; SELECT g FROM generate_series(1, 3) g").ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 2 || len(results[0].Rows) != 1 || len(results[1].Rows) != 3 {
		t.Fatalf("got %d results: %+v", len(results), results)
	}
	if got := string(results[1].Rows[2][0]); got != "3" {
		t.Fatalf("last row of the second result = %q, want 3", got)
	}
}

func TestPgxExtendedProtocol(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	conn := p.connect(t, scramUser, userPassword, "acme")
	ctx := testContext(t)

	var (
		sum    int32
		text   string
		blob   []byte
		isNull bool
		array  []int64
	)
	err := conn.QueryRow(ctx, "SELECT $1::int4 + 1, $2::text || '!', $3::bytea, $4::text IS NULL, $5::int8[]",
		int32(41), "hello", []byte{0, 1, 255}, nil, []int64{3, 1, 2}).Scan(&sum, &text, &blob, &isNull, &array)
	if err != nil {
		t.Fatal(err)
	}
	if sum != 42 || text != "hello!" || !bytes.Equal(blob, []byte{0, 1, 255}) || !isNull || !slices.Equal(array, []int64{3, 1, 2}) {
		t.Fatalf("got %d, %q, %v, %v, %v", sum, text, blob, isNull, array)
	}

	if _, err := conn.Prepare(ctx, "add", "SELECT $1::int + $2::int"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2} {
		if got := queryValue[int](t, conn, "add", n, 10); got != n+10 {
			t.Fatalf("add(%d, 10) = %d", n, got)
		}
	}
}

// TestPgxBatch sends 100 queries before a single Sync: each mode pipelines
// Parse, Bind and Execute messages differently.
func TestPgxBatch(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	for _, mode := range []string{"exec", "cache_statement"} {
		t.Run(mode, func(t *testing.T) {
			conn := p.connect(t, "postgres", "", "acme", "default_query_exec_mode", mode)
			batch := &pgx.Batch{}
			for i := range 100 {
				// Distinct statements, so that each one is parsed.
				batch.Queue(fmt.Sprintf("SELECT %d * $1::int", i), 2)
			}
			results := conn.SendBatch(testContext(t), batch)
			for i := range 100 {
				var got int
				if err := results.QueryRow().Scan(&got); err != nil {
					t.Fatalf("query %d: %v", i, err)
				}
				if got != 2*i {
					t.Fatalf("query %d returned %d, want %d", i, got, 2*i)
				}
			}
			if err := results.Close(); err != nil {
				t.Fatal(err)
			}
			if got := queryValue[string](t, conn, "SELECT 'after'"); got != "after" {
				t.Fatalf("after the batch: %q", got)
			}
		})
	}
}

func TestPgxCopyFrom(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	conn := p.connect(t, scramUser, userPassword, "acme")
	ctx := testContext(t)
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id int8, name text)"); err != nil {
		t.Fatal(err)
	}
	const rows = 100_000
	n, err := conn.CopyFrom(ctx, pgx.Identifier{"t"}, []string{"id", "name"},
		pgx.CopyFromSlice(rows, func(i int) ([]any, error) {
			return []any{int64(i), fmt.Sprintf("row %d", i)}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	if n != rows {
		t.Fatalf("CopyFrom copied %d rows, want %d", n, rows)
	}
	var count, sum int64
	if err := conn.QueryRow(ctx, "SELECT count(*), sum(id) FROM t").Scan(&count, &sum); err != nil {
		t.Fatal(err)
	}
	if count != rows || sum != rows*(rows-1)/2 {
		t.Fatalf("count = %d, sum = %d", count, sum)
	}
}

// sleepCancelled runs pg_sleep(60) on conn, which must send a CancelRequest
// when its context ends, cancels the context once the backend of database
// runs the query and returns the query's error.
func sleepCancelled(t testing.TB, conn *pgx.Conn, database string) error {
	t.Helper()
	pid := backendPID(t, conn)
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, sleep60)
		errc <- err
	}()
	if pids := waitRunning(t, database, sleep60); !slices.Equal(pids, []int32{pid}) {
		t.Errorf("backends running the query: %v, want [%d]", pids, pid)
	}
	cancel()
	return <-errc
}

func TestPgxContextCancel(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	conn := connectConfig(t, p.url("postgres", "", "acme"), cancelOnContext)
	pid := backendPID(t, conn)

	wantPgError(t, sleepCancelled(t, conn, tn.db), "57014")

	if state, query := backendQuery(t, tn.db, pid); state == "active" && query == sleep60 {
		t.Fatalf("backend %d still runs %q", pid, query)
	}
	// The cancelled session goes on, on the same backend, and new sessions
	// open as before.
	if got := backendPID(t, conn); got != pid {
		t.Fatalf("after the cancel the session runs on backend %d, want %d", got, pid)
	}
	fresh := p.connect(t, "postgres", "", "acme")
	if got := queryValue[int](t, fresh, "SELECT 1"); got != 1 {
		t.Fatalf("new connection: SELECT 1 = %d", got)
	}
}

func TestCancelIsolation(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	victim := connectConfig(t, p.url("postgres", "", "acme"), cancelOnContext)
	survivor := connectConfig(t, p.url("postgres", "", "acme"), cancelOnContext)

	const sleep1 = "SELECT pg_sleep(1)"
	survived := make(chan error, 1)
	go func() {
		_, err := survivor.Exec(testContext(t), sleep1)
		survived <- err
	}()
	waitRunning(t, tn.db, sleep1)

	wantPgError(t, sleepCancelled(t, victim, tn.db), "57014")
	if err := <-survived; err != nil {
		t.Fatalf("the other session's query: %v", err)
	}
}

func TestPgxListenNotify(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	listener := p.connect(t, "postgres", "", "acme")
	notifier := p.connect(t, "postgres", "", "acme")
	ctx := testContext(t)
	if _, err := listener.Exec(ctx, "LISTEN events"); err != nil {
		t.Fatal(err)
	}
	if _, err := notifier.Exec(ctx, "SELECT pg_notify('events', $1)", "hello"); err != nil {
		t.Fatal(err)
	}
	n, err := listener.WaitForNotification(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Channel != "events" || n.Payload != "hello" || int32(n.PID) != backendPID(t, notifier) {
		t.Fatalf("got notification %+v", n)
	}
}

func TestPgxNoticeAndParameterStatus(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	var notices []*pgconn.Notice
	conn := connectConfig(t, p.url("postgres", "", "acme"), func(cfg *pgx.ConnConfig) {
		cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n) }
	})
	ctx := testContext(t)

	if _, err := conn.Exec(ctx, "DO $$BEGIN RAISE NOTICE 'hello %', 42; END$$"); err != nil {
		t.Fatal(err)
	}
	if len(notices) != 1 || notices[0].Severity != "NOTICE" || notices[0].Message != "hello 42" {
		t.Fatalf("got notices %+v", notices)
	}

	if _, err := conn.Exec(ctx, "SET application_name = 'pgmigrate e2e'"); err != nil {
		t.Fatal(err)
	}
	if got := conn.PgConn().ParameterStatus("application_name"); got != "pgmigrate e2e" {
		t.Fatalf("ParameterStatus(application_name) = %q", got)
	}
}

// openPQ opens a lib/pq pool on connString, closed when t ends.
func openPQ(t testing.TB, connString string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", connString)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestLibPQQuery(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	db := openPQ(t, p.url(md5User, userPassword, "acme"))
	var (
		text   string
		number int
		schema string
	)
	err := db.QueryRowContext(testContext(t), "SELECT $1::text || $2::text, $3::int * 2, current_schema()",
		"it's ", "fine", 21).Scan(&text, &number, &schema)
	if err != nil {
		t.Fatal(err)
	}
	if text != "it's fine" || number != 42 || schema != "acme" {
		t.Fatalf("got %q, %d, %q", text, number, schema)
	}
}

func TestLibPQTransaction(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	db := openPQ(t, p.url(md5User, userPassword, "acme"))
	ctx := testContext(t)
	if _, err := db.ExecContext(ctx, "CREATE TABLE t (v text)"); err != nil {
		t.Fatal(err)
	}
	for _, commit := range []bool{false, true} {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO t VALUES ($1)", fmt.Sprint("commit=", commit)); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	rows, err := db.QueryContext(ctx, "SELECT v FROM t")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"commit=true"}) {
		t.Fatalf("rows after one rollback and one commit: %q", got)
	}
}

func TestRoutingIsolatesTenants(t *testing.T) {
	tn := newTenants(t, "acme", "globex")
	p := startProxy(t, tn.config(""))
	ctx := testContext(t)
	for _, org := range tn.orgs {
		conn := p.connect(t, scramUser, userPassword, org)
		if _, err := conn.Exec(ctx, "CREATE TABLE t (org text)"); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "INSERT INTO t VALUES ($1), ($1)", org); err != nil {
			t.Fatal(err)
		}
	}
	for _, org := range tn.orgs {
		conn := p.connect(t, scramUser, userPassword, org)
		if got := tenantRows(t, conn); !slices.Equal(got, []string{org, org}) {
			t.Fatalf("%s sees rows %q", org, got)
		}
	}

	rows, err := directConn(t, tn.db).Query(ctx,
		"SELECT schemaname::text FROM pg_catalog.pg_tables WHERE tablename = 't' ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	schemas, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(schemas, tn.orgs) {
		t.Fatalf("tables t live in schemas %q, want %q", schemas, tn.orgs)
	}
}

// tenantRows returns the org column of the unqualified table t.
func tenantRows(t testing.TB, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(testContext(t), "SELECT org FROM t ORDER BY org")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestRoutingStartupOptions(t *testing.T) {
	tn := newTenants(t, "acme", "globex")
	p := startProxy(t, tn.config(""))
	orgOption := func(org string) string { return "-c pgmigrate.org=" + org }
	tests := []struct {
		name, database, options string
		wantSchema              string // on success
		wantCode, wantMessage   string // on failure
	}{
		{name: "database", database: "acme", wantSchema: "acme"},
		{name: "option with the tenant database", database: tn.db, options: orgOption("globex"), wantSchema: "globex"},
		{name: "option agreeing with the database", database: "acme", options: orgOption("acme"), wantSchema: "acme"},
		{name: "option conflicting with the database", database: "globex", options: orgOption("acme"), wantCode: "22023"},
		{name: "unknown org", database: "initech", wantCode: "3D000", wantMessage: `database "initech" does not exist`},
		{name: "unknown org option", database: tn.db, options: orgOption("initech"), wantCode: "3D000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := parseConfig(t, p.url("postgres", "", tt.database))
			if tt.options != "" {
				cfg.RuntimeParams["options"] = tt.options
			}
			conn, err := pgx.ConnectConfig(testContext(t), cfg)
			if tt.wantCode != "" {
				if err == nil {
					conn.Close(context.Background())
				}
				pgErr := wantPgError(t, err, tt.wantCode)
				if pgErr.Severity != "FATAL" || !strings.Contains(pgErr.Message, tt.wantMessage) {
					t.Fatalf("got %s %q, want FATAL %q", pgErr.Severity, pgErr.Message, tt.wantMessage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			if got := queryValue[string](t, conn, "SELECT current_schema()"); got != tt.wantSchema {
				t.Fatalf("current_schema() = %q, want %q", got, tt.wantSchema)
			}
		})
	}
}
