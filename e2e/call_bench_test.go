package e2e

import (
	"context"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgmigrate/pgmigrate-proxy/engine"
)

// BenchmarkCallLatency compares one migrate command through the proxy (a
// pgx client over the wire, in each protocol) with the engine called
// directly, on the same database. The command is a re-apply that stays
// unchanged, so it can repeat; both paths read the live catalog and take
// the tenant's lock each time.
func BenchmarkCallLatency(b *testing.B) {
	tn := newTenants(b, "acme")
	p := startProxy(b, tn.config(""))
	ctx := context.Background()
	field := `{"name":"note","type":"Text"}`
	setup := p.connect(b, "postgres", "", "acme")
	if _, err := setup.Exec(ctx, `CALL migrate.create_model('invoice', '[{"name":"id","type":"Int"}]')`); err != nil {
		b.Fatal(err)
	}
	if _, err := setup.Exec(ctx, "CALL migrate.add_field($1, $2)", "invoice", field); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []struct {
		name string
		mode pgx.QueryExecMode
	}{{"proxy-simple", pgx.QueryExecModeSimpleProtocol}, {"proxy-extended", pgx.QueryExecModeCacheStatement}} {
		b.Run(mode.name, func(b *testing.B) {
			conn := p.connect(b, "postgres", "", "acme")
			for b.Loop() {
				if _, err := conn.Exec(ctx, "CALL migrate.add_field($1, $2)", mode.mode, "invoice", field); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("engine", func(b *testing.B) {
		pool, err := pgxpool.New(ctx, cluster.DSN("postgres", tn.db))
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		eng := engine.New(pool, engine.DefaultOptions())
		spec, _ := engine.ParseField([]byte(field))
		for b.Loop() {
			if _, err := eng.Apply(ctx, "acme", &engine.AddField{Model: "invoice", Field: spec}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkConnect measures opening and closing a tenant session through
// the proxy with SCRAM authentication, directly against PostgreSQL as the
// baseline. PGMIGRATE_E2E_PROXY_BIN runs it against another build.
func BenchmarkConnect(b *testing.B) {
	tn := newTenants(b, "acme")
	p := startProxy(b, tn.config(""))
	ctx := context.Background()
	for _, target := range []struct{ name, url string }{
		{"proxy", p.url(scramUser, userPassword, "acme")},
		{"direct", (&url.URL{Scheme: "postgres", User: url.UserPassword(scramUser, userPassword), Host: cluster.Addr(), Path: "/" + tn.db, RawQuery: "sslmode=disable"}).String()},
	} {
		b.Run(target.name, func(b *testing.B) {
			for b.Loop() {
				conn, err := pgx.Connect(ctx, target.url)
				if err != nil {
					b.Fatal(err)
				}
				conn.Close(ctx)
			}
		})
	}
}
