package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// timeout bounds every blocking step of a test, so a broken proxy fails the
// test instead of hanging it.
const timeout = 10 * time.Second

// sleep60 is a query that runs until it is cancelled.
const sleep60 = "SELECT pg_sleep(60)"

// testContext returns a context that ends after timeout or with t.
func testContext(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// parseConfig parses connString into a pgx config and adjusts it with each
// of opts.
func parseConfig(t testing.TB, connString string, opts ...func(*pgx.ConnConfig)) *pgx.ConnConfig {
	t.Helper()
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		t.Fatal(err)
	}
	for _, opt := range opts {
		opt(cfg)
	}
	return cfg
}

// connectConfig opens a pgx connection described by connString after
// adjusting its config with each of opts; it is closed when t ends.
func connectConfig(t testing.TB, connString string, opts ...func(*pgx.ConnConfig)) *pgx.Conn {
	t.Helper()
	conn, err := pgx.ConnectConfig(testContext(t), parseConfig(t, connString, opts...))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// cancelOnContext makes a connection answer a cancelled context with a
// CancelRequest, as libpq clients do, instead of closing the socket.
func cancelOnContext(cfg *pgx.ConnConfig) {
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: timeout}
	}
}

// directConn connects to database on the cluster as the superuser, bypassing
// the proxy.
func directConn(t testing.TB, database string) *pgx.Conn {
	t.Helper()
	return connectConfig(t, cluster.DSN("postgres", database))
}

// queryValue runs sql with args on conn and returns the single value of its
// single row.
func queryValue[T any](t testing.TB, conn *pgx.Conn, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := conn.QueryRow(testContext(t), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// backendPID is the process id of the PostgreSQL backend serving conn, as
// PostgreSQL reports it (the proxy hands its clients the same).
func backendPID(t testing.TB, conn *pgx.Conn) int32 {
	t.Helper()
	return queryValue[int32](t, conn, "SELECT pg_backend_pid()")
}

// waitRunning waits until some backend of database other than the observer's
// own is executing query and returns the process ids of those backends.
func waitRunning(t testing.TB, database, query string) []int32 {
	t.Helper()
	observer := directConn(t, database)
	ctx := testContext(t)
	for {
		rows, err := observer.Query(ctx, `
SELECT pid FROM pg_catalog.pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND state = 'active' AND query = $1
ORDER BY pid`, query)
		if err != nil {
			t.Fatal(err)
		}
		pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) > 0 {
			return pids
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no backend of %s started %q", database, query)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// backendQuery returns what the backend pid of database is doing: its state
// and its last query.
func backendQuery(t testing.TB, database string, pid int32) (state, query string) {
	t.Helper()
	observer := directConn(t, database)
	err := observer.QueryRow(testContext(t), `
SELECT coalesce(state, ''), query FROM pg_catalog.pg_stat_activity WHERE pid = $1`, pid).Scan(&state, &query)
	if errors.Is(err, pgx.ErrNoRows) {
		return "gone", ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return state, query
}

// wantPgError fails t unless err is a PostgreSQL error with SQLSTATE code.
func wantPgError(t testing.TB, err error, code string) *pgconn.PgError {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		t.Fatalf("got error %v, want SQLSTATE %s", err, code)
	}
	if pgErr.Code != code {
		t.Fatalf("got SQLSTATE %s (%s), want %s", pgErr.Code, pgErr.Message, code)
	}
	return pgErr
}

// psqlCommand prepares psql, ignoring any psqlrc and PG* variables of the
// environment, to connect to connString with password.
func psqlCommand(ctx context.Context, connString, password string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "psql", append([]string{"-X", "-d", connString}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=10")
	return cmd
}

// psql runs psql with args and returns its standard output, failing t if it
// does not succeed.
func psql(t testing.TB, connString, password string, args ...string) string {
	t.Helper()
	cmd := psqlCommand(testContext(t), connString, password, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("psql %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// writeFile writes content to the file name.
func writeFile(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
