package pgtest

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

var cluster *Cluster

func TestMain(m *testing.M) {
	os.Exit(Run(m, Options{
		HBA:      []string{"host all rejected 127.0.0.1/32 reject"},
		Settings: map[string]string{"work_mem": "7MB"},
	}, &cluster))
}

// query runs sql with text arguments on conn and returns the first column of
// the first row.
func query(t *testing.T, conn *pgconn.PgConn, sql string, args ...string) string {
	t.Helper()
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(a)
	}
	res := conn.ExecParams(t.Context(), sql, params, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatalf("%s: %v", sql, res.Err)
	}
	if len(res.Rows) == 0 {
		t.Fatalf("%s: no rows", sql)
	}
	return string(res.Rows[0][0])
}

func connect(t *testing.T, c *Cluster, user, database string) *pgconn.PgConn {
	t.Helper()
	conn, err := pgconn.Connect(t.Context(), c.DSN(user, database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestDSN(t *testing.T) {
	c := &Cluster{port: 5433}
	for _, tc := range []struct{ user, db, want string }{
		{"postgres", "postgres", "postgres://postgres@127.0.0.1:5433/postgres?sslmode=disable"},
		{"alice", "acme-corp", "postgres://alice@127.0.0.1:5433/acme-corp?sslmode=disable"},
		{"a b", "x/y z", "postgres://a%20b@127.0.0.1:5433/x%2Fy%20z?sslmode=disable"},
	} {
		if got := c.DSN(tc.user, tc.db); got != tc.want {
			t.Errorf("DSN(%q, %q) = %q, want %q", tc.user, tc.db, got, tc.want)
		}
		cfg, err := pgconn.ParseConfig(c.DSN(tc.user, tc.db))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.User != tc.user || cfg.Database != tc.db || cfg.Port != 5433 {
			t.Errorf("DSN(%q, %q) parses as user %q database %q port %d", tc.user, tc.db, cfg.User, cfg.Database, cfg.Port)
		}
	}
	if got := c.Addr(); got != "127.0.0.1:5433" {
		t.Errorf("Addr() = %q", got)
	}
}

func TestExec(t *testing.T) {
	db := cluster.CreateDatabase(t)
	err := cluster.Exec(t.Context(), db, `CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2)`)
	if err != nil {
		t.Fatal(err)
	}
	conn := connect(t, cluster, Superuser, db)
	if got := query(t, conn, "SELECT sum(n) FROM t"); got != "3" {
		t.Errorf("sum = %s, want 3", got)
	}

	err = cluster.Exec(t.Context(), db, "SELECT 1; SELECT * FROM missing")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
		t.Errorf("Exec of a bad statement: %v, want SQLSTATE 42P01", err)
	}
}

func TestOptions(t *testing.T) {
	conn := connect(t, cluster, Superuser, "postgres")
	if got := query(t, conn, "SHOW work_mem"); got != "7MB" {
		t.Errorf("work_mem = %s, want 7MB", got)
	}
	if got := query(t, conn, "SHOW fsync"); got != "off" {
		t.Errorf("fsync = %s, want off", got)
	}
	if err := cluster.Exec(t.Context(), "postgres", "CREATE ROLE rejected LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), "postgres", "DROP ROLE rejected") })
	_, err := pgconn.Connect(t.Context(), cluster.DSN("rejected", "postgres"))
	if err == nil || !strings.Contains(err.Error(), "pg_hba.conf rejects") {
		t.Errorf("connect as a rejected role: %v, want pg_hba.conf rejects", err)
	}
}

func TestPasswordAuth(t *testing.T) {
	err := cluster.Exec(t.Context(), "postgres", "CREATE ROLE pw_user LOGIN PASSWORD 'secret'")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), "postgres", "DROP ROLE pw_user") })

	conn, err := pgconn.Connect(t.Context(), "postgres://pw_user:secret@"+cluster.Addr()+"/postgres?sslmode=disable")
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	conn.Close(t.Context())
	if _, err := pgconn.Connect(t.Context(), cluster.DSN("pw_user", "postgres")); err == nil {
		t.Error("connected without a password")
	}
}

func TestCreateDatabase(t *testing.T) {
	var db1, db2 string
	t.Run("sub", func(t *testing.T) {
		db1 = cluster.CreateDatabase(t)
		db2 = cluster.CreateDatabase(t)
		if db1 == db2 {
			t.Fatalf("two databases named %q", db1)
		}
		conn := connect(t, cluster, Superuser, db1)
		if got := query(t, conn, "SELECT current_database()"); got != db1 {
			t.Errorf("current_database() = %s, want %s", got, db1)
		}
		// A session still open at cleanup must not prevent the drop.
	})
	conn := connect(t, cluster, Superuser, "postgres")
	got := query(t, conn, "SELECT count(*) FROM pg_database WHERE datname IN ($1, $2)", db1, db2)
	if got != "0" {
		t.Errorf("%s of the test's databases left after cleanup", got)
	}
}

func TestCreateSchema(t *testing.T) {
	db := cluster.CreateDatabase(t)
	var schema string
	t.Run("sub", func(t *testing.T) {
		schema = cluster.CreateSchema(t, db)
		err := cluster.Exec(t.Context(), db, "CREATE TABLE "+quote(schema)+".t (n int)")
		if err != nil {
			t.Fatal(err)
		}
	})
	conn := connect(t, cluster, Superuser, db)
	got := query(t, conn, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema)
	if got != "0" {
		t.Errorf("schema %s left after cleanup", schema)
	}
}

// TestLifecycle uses its own cluster, since it stops and crashes it.
func TestLifecycle(t *testing.T) {
	ctx := t.Context()
	c, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			c.Close()
		}
	})
	port := c.Port()

	open := connect(t, c, Superuser, "postgres")
	if err := c.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := open.Exec(ctx, "SELECT 1").ReadAll(); err == nil {
		t.Error("a session survived Kill")
	}
	if _, err := pgconn.Connect(ctx, c.DSN(Superuser, "postgres")); err == nil {
		t.Error("connected after Kill")
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if c.Port() != port {
		t.Errorf("port changed from %d to %d", port, c.Port())
	}
	if err := c.Exec(ctx, "postgres", "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}

	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, c, Superuser, "postgres")
	if got := query(t, conn, "SELECT n FROM kept"); got != "42" {
		t.Errorf("after Stop and Restart, kept.n = %s, want 42", got)
	}

	closed = true
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory %s left after Close: %v", c.dir, err)
	}
}

func TestStartFailureShowsLog(t *testing.T) {
	c, err := Start(t.Context(), Options{Settings: map[string]string{"shared_buffers": "plenty"}})
	if err == nil {
		c.Close()
		t.Fatal("started with a bad setting")
	}
	if !strings.Contains(err.Error(), `invalid value for parameter "shared_buffers"`) {
		t.Errorf("error does not show the server log: %v", err)
	}
}
