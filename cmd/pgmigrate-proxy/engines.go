package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgmigrate/pgmigrate-proxy/engine"
	"github.com/pgmigrate/pgmigrate-proxy/policy"
)

// poolConns is the size of each engine's pool: a command holds two
// connections (one for its tenant's lock), and org => '*' migrates up to
// eight tenants at once.
const poolConns = 2*8 + 4

// engines keeps one migration engine per upstream database, made on first
// use with a pool of the upstream's DSN (the owner's credentials) naming
// that database.
type engines struct {
	opts engine.Options
	// recorder makes the Recorder of the engine of an upstream database.
	recorder func(upstream, database string) engine.Recorder

	mu    sync.Mutex
	byKey map[string]*engine.Engine
	pools []*pgxpool.Pool
}

func newEngines(cfg *policy.Config, log *slog.Logger, recorder func(upstream, database string) engine.Recorder) *engines {
	return &engines{
		opts: engine.Options{
			LockTimeout:      cfg.Engine.LockTimeout,
			StatementTimeout: cfg.Engine.StatementTimeout,
			AcquireTimeout:   cfg.Engine.AcquireTimeout,
			Retry:            engine.Retry{MaxAttempts: cfg.Engine.Retry.MaxAttempts, Delay: cfg.Engine.Retry.Delay, MaxDelay: cfg.Engine.Retry.MaxDelay},
			Logger:           log,
		},
		recorder: recorder,
		byKey:    map[string]*engine.Engine{},
	}
}

// get returns the engine of route's upstream database.
func (e *engines) get(route policy.Route) (*engine.Engine, error) {
	key := route.Upstream.Name + "\x00" + route.Database
	e.mu.Lock()
	defer e.mu.Unlock()
	if eng := e.byKey[key]; eng != nil {
		return eng, nil
	}
	cfg, err := pgxpool.ParseConfig(route.Upstream.DSN)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", route.Upstream.Name, err)
	}
	cfg.ConnConfig.Database = route.Database
	cfg.MaxConns = poolConns
	engine.ConfigurePool(cfg)
	// The pool connects on first use; this context ends nothing later.
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", route.Upstream.Name, err)
	}
	e.pools = append(e.pools, pool)
	opts := e.opts
	opts.Recorder = e.recorder(route.Upstream.Name, route.Database)
	eng := engine.New(pool, opts)
	e.byKey[key] = eng
	go eng.Sweep(sweepEvery)
	return eng, nil
}

// sweepEvery is how often each engine looks for intents that no command
// is finishing (an engine sweeps once when it is made, too).
const sweepEvery = time.Minute

// stop stops every engine's sweeps and undoing (see engine.Close), so that
// migrations still running are left to the next recovery.
func (e *engines) stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, eng := range e.byKey {
		eng.Close()
	}
}

// close stops every engine and closes every pool.
func (e *engines) close() {
	e.stop()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range e.pools {
		p.Close()
	}
}

// provisioner makes the config file's tenants exist in their databases and
// remembers what failed, for /readyz.
type provisioner struct {
	engines *engines
	router  *policy.Router
	log     *slog.Logger

	running sync.Mutex // one run at a time

	mu  sync.Mutex
	cfg *policy.Config // of the last run
	err error
}

// errProvisioning is what /readyz says until the first provisioning ends.
var errProvisioning = errors.New("the config's tenants are being provisioned")

func newProvisioner(engs *engines, router *policy.Router, log *slog.Logger) *provisioner {
	return &provisioner{engines: engs, router: router, log: log, err: errProvisioning}
}

// run provisions every tenant of cfg, within provisionTimeout:
// create_tenant adopts what is in place (schema, role, grants, catalog
// row) and makes what is missing. A tenant that cannot be provisioned is
// logged by name and keeps /readyz failing (retry tries again); the others
// are served. Then the posture check of every upstream database logs a
// warning per finding.
func (p *provisioner) run(ctx context.Context, cfg *policy.Config) {
	p.running.Lock()
	defer p.running.Unlock()
	p.provisionAll(ctx, cfg)
}

// provisionAll is run's work, under p.running.
func (p *provisioner) provisionAll(ctx context.Context, cfg *policy.Config) {
	ctx, cancel := context.WithTimeout(engine.WithActor(ctx, "pgmigrate-proxy", "provisioning"), provisionTimeout)
	defer cancel()
	var errs []error
	// The posture check of each upstream database, once its tenants are
	// all provisioned.
	check := map[*engine.Engine]policy.Route{}
	for _, t := range cfg.Tenants {
		route, err := p.router.Tenant(ctx, t.Org)
		var eng *engine.Engine
		if err == nil {
			eng, err = p.engines.get(route)
		}
		if err == nil {
			err = provision(ctx, eng, t.Org, &engine.CreateTenant{Org: t.Org, Schema: t.Schema, NoCreate: cfg.Policy.RawDDL == policy.RawDDLDeny})
		}
		if err != nil {
			p.log.Error("tenant cannot be provisioned", "org", t.Org, "error", err.Error())
			errs = append(errs, fmt.Errorf("tenant %q cannot be provisioned: %w", t.Org, err))
			continue
		}
		check[eng] = route
	}
	for eng, route := range check {
		p.posture(ctx, eng, route, cfg.Policy.RawDDL == policy.RawDDLDeny)
	}
	p.mu.Lock()
	p.cfg, p.err = cfg, errors.Join(errs...)
	p.mu.Unlock()
}

// provision applies op for org unless a dry run finds it in place: a
// tenant already provisioned takes no lock, so that serving does not wait
// for the recovery of an unfinished intent of the tenant (a long index
// build), which the engine's sweep does meanwhile.
func provision(ctx context.Context, eng *engine.Engine, org string, op *engine.CreateTenant) error {
	if r, err := eng.Plan(ctx, org, op); err == nil && r.Status == engine.Unchanged {
		return nil
	}
	_, err := eng.Apply(ctx, org, op)
	return err
}

// provisionTimeout bounds one provisioning run of the config file's
// tenants.
const provisionTimeout = 30 * time.Second

// Delays between provisioning runs while one fails: the first, and the
// longest.
const (
	provisionRetry    = time.Second
	provisionRetryMax = 30 * time.Second
)

// retry runs the last configuration's provisioning again, at growing
// intervals, for as long as it fails, until ctx ends: an upstream down or
// starting up when the proxy started, or a grant an administrator adds
// later, needs no restart or SIGHUP.
func (p *provisioner) retry(ctx context.Context) {
	delay := provisionRetry
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		if p.again(ctx) {
			delay = min(2*delay, provisionRetryMax)
		} else {
			delay = provisionRetry
		}
	}
}

// again runs the last configuration's provisioning again if it failed,
// and reports whether it did; a reload's run between the two cannot be
// overtaken by the older configuration.
func (p *provisioner) again(ctx context.Context) bool {
	p.running.Lock()
	defer p.running.Unlock()
	p.mu.Lock()
	cfg, failed := p.cfg, p.err != nil
	p.mu.Unlock()
	if failed {
		p.provisionAll(ctx, cfg)
	}
	return failed
}

// posture logs the findings of one upstream database's posture check.
func (p *provisioner) posture(ctx context.Context, eng *engine.Engine, route policy.Route, denyCreate bool) {
	findings, err := eng.Posture(ctx, denyCreate)
	if err != nil {
		p.log.Warn("posture check failed", "upstream", route.Upstream.Name, "database", route.Database, "error", err.Error())
	}
	for _, f := range findings {
		p.log.Warn("posture: "+f.Detail, "upstream", route.Upstream.Name, "database", route.Database, "kind", f.Kind, "object", f.Object)
	}
}

// ready reports the provisioning failures of the last run.
func (p *provisioner) ready() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}
