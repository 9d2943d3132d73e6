package engine

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgmigrate/pgmigrate-proxy/internal/pgtest"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) {
	if order := os.Getenv(childEnv); order != "" {
		os.Exit(runChild(order))
	}
	// Commits must survive an immediate shutdown, which the crash
	// recovery tests make.
	os.Exit(pgtest.Run(m, pgtest.Options{Settings: map[string]string{"synchronous_commit": "on"}}, &cluster))
}

// testDB is a fresh database, an engine on it and a tenant schema "acme".
// The pool is the superuser's, which the tests check the catalog with; it
// is the engine's own unless the engine runs as another role.
type testDB struct {
	name   string
	pool   *pgxpool.Pool
	engine *Engine
}

// testOptions retry fast, so tests of retries stay short.
func testOptions() Options {
	return Options{LockTimeout: 200 * time.Millisecond, Retry: Retry{MaxAttempts: 3, Delay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond}}
}

// newTestDB creates a database with a schema per org and an engine using
// opts on a pool of it.
func newTestDB(t testing.TB, opts Options, orgs ...string) *testDB {
	t.Helper()
	name := cluster.CreateDatabase(t)
	for _, org := range orgs {
		if err := cluster.Exec(context.Background(), name, "CREATE SCHEMA "+ident(org)); err != nil {
			t.Fatal(err)
		}
	}
	pool := newPool(t, cluster.DSN(pgtest.Superuser, name), 0)
	return &testDB{name: name, pool: pool, engine: New(pool, opts)}
}

// newPool is a pool on dsn configured for the engine, of at most maxConns
// connections (0: pgxpool's default), closed when the test ends.
func newPool(t testing.TB, dsn string, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ConfigurePool(cfg)
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// exec runs SQL on the test database as the superuser.
func (db *testDB) exec(t testing.TB, sql string) {
	t.Helper()
	if err := cluster.Exec(context.Background(), db.name, sql); err != nil {
		t.Fatal(err)
	}
}

// apply runs op and fails the test on error.
func (db *testDB) apply(t testing.TB, org string, op Operation) Result {
	t.Helper()
	r, err := db.engine.Apply(context.Background(), org, op)
	if err != nil {
		t.Fatalf("%s: %v", op.Kind(), err)
	}
	return r
}
