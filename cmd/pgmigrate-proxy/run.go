package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pgmigrate/pgmigrate-proxy/intercept"
	"github.com/pgmigrate/pgmigrate-proxy/metrics"
	"github.com/pgmigrate/pgmigrate-proxy/policy"
	"github.com/pgmigrate/pgmigrate-proxy/proxy"
	"github.com/pgmigrate/pgmigrate-proxy/registry"
)

const usage = `Usage: pgmigrate-proxy [flags]

pgmigrate-proxy serves PostgreSQL clients and routes each session to its
tenant ("org"), named by the database in the connection string or by the
startup option -c pgmigrate.org=ORG.

Flags (each also read from the environment variable shown; a flag wins over
the environment, which wins over the config file):
`

const usageTail = `
Config file keys (YAML; see docs/configuration.md for each one):
  listen, admin_listen, drain_timeout, log_level,
  tls.cert_file, tls.key_file,
  limits.startup_timeout, limits.max_message_size, limits.max_client_conns,
  upstreams[].name, upstreams[].dsn,
  tenants[].org, tenants[].upstream, tenants[].database, tenants[].schema,
  policy.admins, policy.migrators, policy.allow_drop, policy.raw_ddl,
  engine.lock_timeout, engine.statement_timeout, engine.command_timeout,
  engine.acquire_timeout, engine.fanout_concurrency,
  engine.retry.max_attempts, engine.retry.delay, engine.retry.max_delay,
  registry.refresh, registry.miss_ttl
${VAR} in the file is replaced by the environment variable VAR. Upstream
DSNs also honour the usual PG* environment variables (PGPASSWORD, ...).

Tracing: with OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
set, spans of migrate commands are exported over OTLP/HTTP; the other OTEL_*
variables (OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER, ...) apply as usual, and
OTEL_TRACES_EXPORTER=none turns it off.

Signals: SIGTERM or SIGINT drains sessions for drain_timeout, then exits 0;
SIGHUP reloads the config file's tenants and policy.
`

// options are the command line and environment settings.
type options struct {
	config, listen, adminListen, upstream, logLevel string
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("pgmigrate-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	str := func(p *string, name, env, help string) {
		fs.StringVar(p, name, getenv(env), fmt.Sprintf("%s (env %s)", help, env))
	}
	str(&o.config, "config", "PGMIGRATE_CONFIG", "YAML config `file`")
	str(&o.listen, "listen", "PGMIGRATE_LISTEN", "client `address` (default 127.0.0.1:6432)")
	str(&o.adminListen, "admin-listen", "PGMIGRATE_ADMIN_LISTEN", "`address` of /metrics, /healthz and /readyz (default 127.0.0.1:9464)")
	str(&o.upstream, "upstream", "PGMIGRATE_UPSTREAM", "upstream `DSN`; replaces the config file's upstreams with one named main")
	str(&o.logLevel, "log-level", "PGMIGRATE_LOG_LEVEL", "debug, info, warn or error (default info)")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
		fmt.Fprint(stderr, usageTail)
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return o, nil
}

// loadConfig builds the configuration from defaults, the file, then the
// environment and flags.
func loadConfig(o options, getenv func(string) string) (*policy.Config, error) {
	cfg := policy.Default()
	if o.config != "" {
		if err := policy.Load(o.config, &cfg, getenv); err != nil {
			return nil, fmt.Errorf("config %s: %w", o.config, err)
		}
	}
	if o.listen != "" {
		cfg.Listen = o.listen
	}
	if o.adminListen != "" {
		cfg.AdminListen = o.adminListen
	}
	if o.logLevel != "" {
		cfg.LogLevel = o.logLevel
	}
	if o.upstream != "" {
		cfg.Upstreams = []policy.Upstream{{Name: "main", DSN: o.upstream}}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &cfg, nil
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: l,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.MessageKey {
				a.Key = "message"
			}
			return a
		},
	}))
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	o, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg, err := loadConfig(o, getenv)
	if err != nil {
		return err
	}
	// From here on SIGHUP reloads instead of ending the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log := newLogger(stderr, cfg.LogLevel)
	router, err := policy.NewRouter(cfg)
	if err != nil {
		return err
	}
	var tlsConfig *tls.Config
	if cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return fmt.Errorf("config: tls: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	stopTracing, err := setupTracing(ctx, getenv)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		stopTracing(flushCtx)
	}()
	proxyMetrics := &proxy.Metrics{}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), proxyMetrics)
	migrations := metrics.New(reg)
	engs := newEngines(cfg, log, migrations.Recorder)
	defer engs.close()
	migrator := &intercept.Handler{
		Engine:            engs.get,
		Route:             router.Tenant,
		Rules:             router.Rules,
		Tenants:           router.Tenants,
		Upstreams:         router.Upstreams,
		CommandTimeout:    cfg.Engine.CommandTimeout,
		FanoutConcurrency: cfg.Engine.FanoutConcurrency,
		Logger:            log,
		Observe:           migrations.Command,
	}
	srv := proxy.New(proxy.Config{
		Router:         router,
		TLS:            tlsConfig,
		StartupTimeout: cfg.Limits.StartupTimeout,
		MaxMessageSize: cfg.Limits.MaxMessageSize,
		MaxClientConns: cfg.Limits.MaxClientConns,
		Logger:         log,
		Metrics:        proxyMetrics,
		Migrator:       migrator,
	})
	// Both addresses are bound before anything connects upstream, so that
	// no outgoing connection's port can take one of them.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	var aln net.Listener
	if cfg.AdminListen != "" {
		if aln, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			return err
		}
	}
	prov := newProvisioner(engs, router, log)
	if aln != nil {
		ready := func(ctx context.Context) error { return errors.Join(prov.ready(), router.CheckUpstreams(ctx)) }
		admin := &http.Server{Handler: proxy.AdminHandler(reg, ready), ReadHeaderTimeout: 5 * time.Second}
		go admin.Serve(aln)
		defer admin.Close()
	}
	// The catalogs' tenants are routed once loaded; the config's win.
	catalog, err := registry.New(registry.Config{Upstreams: router.Upstreams(), Refresh: cfg.Registry.Refresh,
		MissTTL: cfg.Registry.MissTTL, Logger: log, Dropped: srv.EndOrg})
	if err != nil {
		return err
	}
	defer catalog.Close()
	reg.MustRegister(catalog)
	catalog.Start(ctx)
	if err := catalogConflicts(cfg, catalog); err != nil {
		return err
	}
	router.SetCatalog(catalog)
	migrator.Made = catalog.Forget
	// Clients are served once the tenants they may name are provisioned.
	prov.run(ctx, cfg)
	go prov.retry(ctx)
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServing()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(serveCtx, ln) }()

	log.Info("listening", "listen", ln.Addr().String(), "admin_listen", cfg.AdminListen, "tenants", len(cfg.Tenants))

	for {
		select {
		case <-hup:
			if cfg := reload(o, getenv, router, log); cfg != nil {
				prov.run(ctx, cfg)
			}
		case err := <-served:
			return err
		case <-ctx.Done():
			log.Info("shutting down", "drain_timeout", cfg.DrainTimeout.String())
			drainCtx, cancel := context.WithTimeout(serveCtx, cfg.DrainTimeout)
			// Past the drain timeout, sessions are closed and the
			// migrations they ran left to the next recovery.
			context.AfterFunc(drainCtx, engs.stop)
			srv.Shutdown(drainCtx)
			cancel()
			<-served
			log.Info("stopped")
			return nil
		}
	}
}

// catalogConflicts reports the config's tenants that a catalog places
// elsewhere.
func catalogConflicts(cfg *policy.Config, catalog *registry.Registry) error {
	var errs []error
	for _, t := range cfg.Tenants {
		c, ok := catalog.Catalogued(t.Org)
		if ok && (c.Upstream != t.Upstream || c.Database != t.Database || c.Schema != t.Schema) {
			errs = append(errs, fmt.Errorf("config: tenant %q is in upstream %q, database %q, schema %q by the config file but in upstream %q, database %q, schema %q by that upstream's pgmigrate.tenants",
				t.Org, t.Upstream, t.Database, t.Schema, c.Upstream, c.Database, c.Schema))
		}
	}
	return errors.Join(errs...)
}

// reload rereads the configuration and gives the router its new tenants and
// policy, and returns the new configuration (nil if it could not be used).
// Listen addresses, limits and engine settings keep their values until
// restart.
func reload(o options, getenv func(string) string, router *policy.Router, log *slog.Logger) *policy.Config {
	cfg, err := loadConfig(o, getenv)
	if err == nil {
		err = router.Update(cfg)
	}
	if err != nil {
		log.Error("reload failed; keeping the previous configuration", "error", err.Error())
		return nil
	}
	log.Info("configuration reloaded", "tenants", len(cfg.Tenants))
	return cfg
}
