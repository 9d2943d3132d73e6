package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgmigrate/pgmigrate-proxy/internal/pgtest"
)

// Macro-benchmarks of the engine on the TestMain cluster. Every iteration
// is a whole experiment on a fresh database, setup included, so ns/op says
// little: the figures are the reported metrics. Run them with -benchtime 1x;
// bench/engine.md explains how to read them.

// benchOrg and benchModel are the tenant and the model the benchmarks
// migrate; benchTable is its table.
const (
	benchOrg   = "acme"
	benchModel = "item"
	benchTable = benchOrg + "." + benchModel
)

// benchFields are the columns of benchModel.
func benchFields() []FieldSpec {
	return []FieldSpec{
		{Name: "id", Type: Int, PrimaryKey: true},
		{Name: "n", Type: Int},
		{Name: "title", Type: String},
	}
}

// statusField is nullable with a constant default, which PostgreSQL adds
// without rewriting the table.
func statusField() FieldSpec {
	return FieldSpec{Name: "status", Type: String, Default: json.RawMessage(`"draft"`)}
}

// fillItemsSQL inserts rows 1..n into the benchModel table of schema.
func fillItemsSQL(schema string, n int) string {
	return fmt.Sprintf("INSERT INTO %s (id, n, title) SELECT g, 0, 'item ' || g FROM generate_series(1, %d) g;\n",
		qualified(schema, benchModel), n)
}

// newItemsDB is a fresh database whose tenant benchOrg has the model
// benchModel, created by the engine, with rows rows.
func newItemsDB(b *testing.B, opts Options, rows int) *testDB {
	b.Helper()
	db := newTestDB(b, opts, benchOrg)
	db.apply(b, benchOrg, &CreateModel{Model: benchModel, Fields: benchFields()})
	db.exec(b, fillItemsSQL(benchOrg, rows))
	db.exec(b, "VACUUM ANALYZE "+benchTable)
	return db
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// The lock-queue experiment: a steady load runs for lqBaseline, then a
// blocker holds ACCESS SHARE on the table for lqHold; lqDDLAfter into it,
// the DDL wanting ACCESS EXCLUSIVE is issued. The load goes on for lqTail
// after the blocker ends.
const (
	lqRows      = 10_000
	lqBaseline  = 2 * time.Second
	lqHold      = 10 * time.Second
	lqDDLAfter  = time.Second
	lqTail      = time.Second
	lqLoadTotal = lqBaseline + lqHold + lqTail
)

// lockQueueOptions give up on the lock after 100 ms and retry for as long
// as any realistic blocker lasts.
func lockQueueOptions() Options {
	return Options{
		LockTimeout: 100 * time.Millisecond,
		Retry:       Retry{MaxAttempts: 200, Delay: 100 * time.Millisecond, MaxDelay: 500 * time.Millisecond},
	}
}

// BenchmarkLockQueue compares what a plain ALTER TABLE and the engine's
// AddField do to the latency of other sessions' queries while a long
// transaction holds a lock on the table.
func BenchmarkLockQueue(b *testing.B) {
	b.Run("naive", func(b *testing.B) {
		benchLockQueue(b, func(ctx context.Context, db *testDB) error {
			_, err := db.pool.Exec(ctx, "ALTER TABLE "+benchTable+" ADD COLUMN c text")
			return err
		})
	})
	b.Run("engine", func(b *testing.B) {
		var attempts int
		base, during := benchLockQueue(b, func(ctx context.Context, db *testDB) error {
			r, err := db.engine.Apply(ctx, benchOrg, &AddField{Model: benchModel, Field: FieldSpec{Name: "c", Type: Text}})
			attempts = r.Attempts
			return err
		})
		b.ReportMetric(float64(attempts), "attempts")
		if limit := 2*base.p99 + lockQueueOptions().LockTimeout; during.p99 > limit {
			b.Errorf("load p99 %v while the blocker held its lock, want at most 2 × baseline p99 + lock_timeout = %v", during.p99, limit)
		}
	})
}

// benchLockQueue runs the lock-queue experiment with ddl, reports the
// load's latencies before and while the blocker held its lock and the
// DDL's duration, and returns the latencies of the last iteration.
func benchLockQueue(b *testing.B, ddl func(context.Context, *testDB) error) (base, during loadLatencies) {
	var ddlTime time.Duration
	for b.Loop() {
		db := newItemsDB(b, lockQueueOptions(), lqRows)
		base, during, ddlTime = lockQueue(b, db, ddl)
		if cols := columnNames(b, db, benchOrg, benchModel); !slices.Contains(cols, "c") {
			b.Fatalf("column c missing after the DDL: %v", cols)
		}
	}
	base.report(b, "base-")
	during.report(b, "")
	b.ReportMetric(millis(ddlTime), "ddl-ms")
	return base, during
}

// lockQueue is one run of the experiment.
func lockQueue(b *testing.B, db *testDB, ddl func(context.Context, *testDB) error) (base, during loadLatencies, ddlTime time.Duration) {
	ctx, cancel := context.WithTimeout(b.Context(), testTimeout)
	l := startLoad(ctx, b, db, lqRows, lqLoadTotal)
	defer l.wait()
	defer cancel()

	sleepCtx(ctx, lqBaseline)
	blk := newBlocker(b, db, "SELECT id FROM "+benchTable+" LIMIT 1")
	held := time.Since(l.start)
	released := blk.releaseAfter(lqHold)
	sleepCtx(ctx, lqDDLAfter)

	start := time.Now()
	if err := ddl(ctx, db); err != nil {
		b.Fatalf("DDL: %v", err)
	}
	ddlTime = time.Since(start)
	if err := <-released; err != nil {
		b.Fatal(err)
	}
	if err := l.wait(); err != nil {
		b.Fatalf("load: %v", err)
	}
	return l.window(b, 0, held), l.window(b, held, held+lqHold), ddlTime
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// The load: loadWorkers connections, each running a primary-key SELECT and
// an UPDATE of random rows in turn, one query every loadInterval.
const (
	loadWorkers  = 8
	loadInterval = 10 * time.Millisecond
)

// queryLoad is the steady traffic other sessions put on the table. It runs
// on a fixed schedule and measures each query's latency from the time it
// was due, not from the time it was sent: a query that waits behind a
// stuck one counts that wait, as a client with a queue of requests would
// see it.
type queryLoad struct {
	start time.Time
	wg    sync.WaitGroup
	once  sync.Once
	err   error
	// samples and errs are per worker.
	samples [][]loadSample
	errs    []error
}

// loadSample is one query: when it was due, from the load's start, and how
// long after that it completed.
type loadSample struct{ due, latency time.Duration }

const (
	loadSelect = "SELECT n FROM " + benchTable + " WHERE id = $1"
	loadUpdate = "UPDATE " + benchTable + " SET n = n + 1 WHERE id = $1"
)

// startLoad connects the workers, warms them up and starts the schedule,
// which lasts d; rows is the number of rows of the table.
func startLoad(ctx context.Context, b *testing.B, db *testDB, rows int, d time.Duration) *queryLoad {
	b.Helper()
	l := &queryLoad{samples: make([][]loadSample, loadWorkers), errs: make([]error, loadWorkers)}
	conns := make([]*pgx.Conn, 0, loadWorkers)
	for range loadWorkers {
		conn, err := pgx.Connect(ctx, cluster.DSN(pgtest.Superuser, db.name))
		if err == nil {
			_, err = conn.Exec(ctx, loadSelect, 1)
		}
		if err == nil {
			_, err = conn.Exec(ctx, loadUpdate, 1)
		}
		if err != nil {
			for _, c := range conns {
				c.Close(ctx)
			}
			b.Fatal(err)
		}
		conns = append(conns, conn)
	}
	l.start = time.Now()
	for w, conn := range conns {
		l.wg.Go(func() {
			defer conn.Close(context.WithoutCancel(ctx))
			l.errs[w] = l.run(ctx, conn, w, rows, d)
		})
	}
	return l
}

// run is worker w's schedule; the workers are staggered evenly over
// loadInterval.
func (l *queryLoad) run(ctx context.Context, conn *pgx.Conn, w, rows int, d time.Duration) error {
	offset := loadInterval * time.Duration(w) / loadWorkers
	for i := 0; ; i++ {
		due := offset + loadInterval*time.Duration(i)
		if due >= d {
			return nil
		}
		sleepCtx(ctx, time.Until(l.start.Add(due)))
		sql := loadSelect
		if i%2 == 1 {
			sql = loadUpdate
		}
		if _, err := conn.Exec(ctx, sql, rand.IntN(rows)+1); err != nil {
			return err
		}
		l.samples[w] = append(l.samples[w], loadSample{due: due, latency: time.Since(l.start) - due})
	}
}

// wait waits for the workers to finish and returns their first error. It
// may be called more than once.
func (l *queryLoad) wait() error {
	l.once.Do(func() {
		l.wg.Wait()
		l.err = errors.Join(l.errs...)
	})
	return l.err
}

// window summarises the latencies of the queries due in [from, to).
func (l *queryLoad) window(b *testing.B, from, to time.Duration) loadLatencies {
	b.Helper()
	var d []time.Duration
	for _, s := range slices.Concat(l.samples...) {
		if s.due >= from && s.due < to {
			d = append(d, s.latency)
		}
	}
	if len(d) == 0 {
		b.Fatalf("no queries due in [%v, %v)", from, to)
	}
	slices.Sort(d)
	rank := func(q float64) time.Duration { return d[int(math.Ceil(q*float64(len(d))))-1] }
	return loadLatencies{p50: rank(0.5), p99: rank(0.99), max: d[len(d)-1]}
}

// loadLatencies summarises a window of the load.
type loadLatencies struct{ p50, p99, max time.Duration }

func (l loadLatencies) report(b *testing.B, prefix string) {
	b.ReportMetric(millis(l.p50), prefix+"p50-ms")
	b.ReportMetric(millis(l.p99), prefix+"p99-ms")
	b.ReportMetric(millis(l.max), prefix+"max-ms")
}

// BenchmarkAddFieldLargeTable adds a nullable field with a constant default
// to a table of a million rows, which must not rewrite it.
func BenchmarkAddFieldLargeTable(b *testing.B) {
	const rows = 1_000_000
	var wall time.Duration
	for b.Loop() {
		db := newItemsDB(b, DefaultOptions(), rows)
		before := itemRelfilenode(b, db)
		start := time.Now()
		wantApplied(b, db.apply(b, benchOrg, &AddField{Model: benchModel, Field: statusField()}))
		wall = time.Since(start)
		if after := itemRelfilenode(b, db); after != before {
			b.Fatalf("the table was rewritten: relfilenode %d -> %d", before, after)
		}
		if s := scalar[string](b, db, "SELECT status FROM "+benchTable+" WHERE id = $1", rows); s != "draft" {
			b.Fatalf("status of an existing row is %q, want the default", s)
		}
	}
	b.ReportMetric(0, "rewrite") // a rewrite has failed the benchmark
	b.ReportMetric(millis(wall), "wall-ms")
}

// itemRelfilenode identifies the benchModel table's file, which a rewrite
// replaces.
func itemRelfilenode(b *testing.B, db *testDB) uint32 {
	b.Helper()
	return scalar[uint32](b, db, "SELECT relfilenode FROM pg_catalog.pg_class WHERE oid = $1::regclass", benchTable)
}

// The tenants experiment: the same AddField on tenantCount tenants, by
// tenantWorkers workers at a time.
const (
	tenantCount   = 1000
	tenantRows    = 100
	tenantBatch   = 100 // tenants created per Exec
	tenantWorkers = 8
)

// BenchmarkAddFieldTenants applies an AddField to every tenant, then again,
// when every result must be unchanged. It runs twice: with the catalog
// statistics as bulk creation left them ("fresh-stats", as right after
// onboarding many tenants at once), and after an ANALYZE ("analyzed", as
// autovacuum leaves a settled database).
func BenchmarkAddFieldTenants(b *testing.B) {
	b.Run("fresh-stats", func(b *testing.B) { benchAddFieldTenants(b, false) })
	b.Run("analyzed", func(b *testing.B) { benchAddFieldTenants(b, true) })
}

// benchAddFieldTenants runs the tenants experiment, with an ANALYZE of the
// whole database before the first pass if analyze.
func benchAddFieldTenants(b *testing.B, analyze bool) {
	var first, again time.Duration
	for b.Loop() {
		opts := DefaultOptions()
		db := newTestDB(b, opts)
		orgs := createItemTenants(b, db)
		if analyze {
			db.exec(b, "ANALYZE")
		}
		e := engineWithConns(b, db, tenantWorkers, opts)
		op := &AddField{Model: benchModel, Field: statusField()}
		first = applyToTenants(b, e, orgs, op, Applied)
		again = applyToTenants(b, e, orgs, op, Unchanged)
	}
	b.ReportMetric(millis(first), "applied-ms")
	b.ReportMetric(millis(again), "unchanged-ms")
	if first > time.Minute {
		b.Errorf("applying to %d tenants took %v, want under 1m", tenantCount, first)
	}
	if again > 10*time.Second {
		b.Errorf("re-applying to %d tenants took %v, want under 10s", tenantCount, again)
	}
}

// createItemTenants creates tenantCount schemas, each with the benchModel
// table holding tenantRows rows, tenantBatch schemas per round trip, and
// returns their names. The tables are plain SQL, unknown to the engine's
// metadata until the first AddField.
func createItemTenants(b *testing.B, db *testDB) []string {
	b.Helper()
	orgs := make([]string, tenantCount)
	var sql strings.Builder
	for i := range orgs {
		orgs[i] = fmt.Sprintf("t%04d", i)
		fmt.Fprintf(&sql, "CREATE SCHEMA %[1]s; CREATE TABLE %[1]s.%[2]s (id integer PRIMARY KEY, n integer, title varchar(100));\n",
			ident(orgs[i]), ident(benchModel))
		sql.WriteString(fillItemsSQL(orgs[i], tenantRows))
		if (i+1)%tenantBatch == 0 || i == len(orgs)-1 {
			db.exec(b, sql.String())
			sql.Reset()
		}
	}
	return orgs
}

// engineWithConns is an engine on db with a pool of two connections per
// worker, as each Apply holds two (the tenant's lock and its work); a
// default pool has max(4, cores).
func engineWithConns(b *testing.B, db *testDB, n int, opts Options) *Engine {
	b.Helper()
	return New(newPool(b, cluster.DSN(pgtest.Superuser, db.name), int32(2*n)), opts)
}

// applyToTenants applies op to every org with tenantWorkers workers, checks
// every result has status want and returns the wall time.
func applyToTenants(b *testing.B, e *Engine, orgs []string, op Operation, want Status) time.Duration {
	b.Helper()
	ctx, cancel := context.WithCancelCause(b.Context())
	defer cancel(nil)
	jobs := make(chan string)
	var wg sync.WaitGroup
	start := time.Now()
	for range tenantWorkers {
		wg.Go(func() {
			for org := range jobs {
				r, err := e.Apply(ctx, org, op)
				if err == nil && r.Status != want {
					err = fmt.Errorf("status %s, want %s", r.Status, want)
				}
				if err != nil {
					cancel(fmt.Errorf("tenant %s: %w", org, err))
				}
			}
		})
	}
feed:
	for _, org := range orgs {
		select {
		case jobs <- org:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	wall := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		b.Fatal(err)
	}
	return wall
}
