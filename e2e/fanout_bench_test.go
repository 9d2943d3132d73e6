package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BenchmarkFanOut makes PGMIGRATE_FANOUT_TENANTS tenants (default 1,000)
// with create_tenant through one proxy, split over PGMIGRATE_FANOUT_UPSTREAMS
// upstreams (databases of the test cluster; default 1), then times
// create_model and add_field with org => '*', and the same add_field again
// (a no-op): seconds of each, as create_s, create_model_s, add_field_s and
// noop_s.
//
//	PGMIGRATE_FANOUT_TENANTS=1000 go test -run '^$' -bench FanOut -benchtime 1x ./e2e/
func BenchmarkFanOut(b *testing.B) {
	tenants, upstreams := envInt(b, "PGMIGRATE_FANOUT_TENANTS", 1000), envInt(b, "PGMIGRATE_FANOUT_UPSTREAMS", 1)
	config := "policy:\n  admins: [postgres]\nengine:\n  command_timeout: 1h\nupstreams:\n"
	var dbs []string
	for i := range upstreams {
		dbs = append(dbs, newTenants(b).db)
		config += fmt.Sprintf("  - name: u%d\n    dsn: %s\n", i, cluster.DSN("postgres", dbs[i]))
	}
	p := startProxy(b, config)
	admin := p.connect(b, "postgres", "", dbs[0])
	for range b.N {
		timed := func(metric string, sql func(i int) string, n int) {
			start := time.Now()
			for i := range n {
				ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
				_, err := admin.Exec(ctx, sql(i))
				cancel()
				if err != nil {
					b.Fatalf("%s: %v", sql(i), err)
				}
			}
			b.ReportMetric(time.Since(start).Seconds(), metric)
		}
		timed("create_s", func(i int) string {
			return fmt.Sprintf("CALL migrate.create_tenant('fan-%06d', upstream => 'u%d')", i, i%upstreams)
		}, tenants)
		timed("create_model_s", func(int) string {
			return `CALL migrate.create_model('invoice', '[{"name":"id","type":"Int"}]', org => '*')`
		}, 1)
		add := func(int) string {
			return `CALL migrate.add_field('invoice', '{"name":"status","type":"String","default":"draft"}', org => '*')`
		}
		timed("add_field_s", add, 1)
		timed("noop_s", add, 1)
	}
}

// envInt is the integer in the environment variable name, or def.
func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// BenchmarkRegistryPropagation times, per op, create_tenant through one
// proxy until a session of the new org is served by a second proxy that
// had answered it 3D000 (and remembers that: only the catalog's
// notification can tell it), and reports that delay after the command's
// answer (propagation_ms, the slowest of b.N).
//
//	go test -run '^$' -bench RegistryPropagation -benchtime 20x ./e2e/
func BenchmarkRegistryPropagation(b *testing.B) {
	db := newTenants(b).db
	config := registryConfig(db, "1h", "1h")
	a, second := startProxy(b, config), startProxy(b, config)
	admin := a.connect(b, "postgres", "", db)
	var slowest time.Duration
	run := time.Now().UnixNano() % 1e9 // roles outlive a test database
	for i := range b.N {
		org := fmt.Sprintf("prop-%d-%d", run, i)
		_, err := pgx.Connect(testContext(b), second.url("postgres", "", org))
		wantFatal(b, err, "3D000", "an org not made yet")
		var login, password *string
		if err := admin.QueryRow(context.Background(), "CALL migrate.create_tenant("+authLiteral(org)+", login => true)").
			Scan(nil, nil, nil, nil, nil, nil, nil, &login, &password); err != nil {
			b.Fatal(err)
		}
		answered := time.Now()
		for {
			conn, err := pgx.Connect(testContext(b), second.url(*login, *password, org))
			if err == nil {
				conn.Close(context.Background())
				break
			}
			if time.Since(answered) > 10*time.Second {
				b.Fatalf("%s: %v", org, err)
			}
		}
		slowest = max(slowest, time.Since(answered))
	}
	b.ReportMetric(float64(slowest.Microseconds())/1000, "propagation_ms")
}
