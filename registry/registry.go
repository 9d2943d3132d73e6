package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgmigrate/pgmigrate-proxy/policy"
)

// Channel is the channel the engine notifies of the tenants it makes and
// drops, with the payload "tenant ORG".
const Channel = "pgmigrate"

// Config is what a Registry needs.
type Config struct {
	// Upstreams are the clusters whose catalogs the Registry reads, each
	// in the database its DSN names.
	Upstreams []*policy.Target
	// Refresh is how often each catalog is reloaded whole.
	Refresh time.Duration
	// MissTTL is how long an org found in no catalog is known unknown.
	MissTTL time.Duration
	// Logger receives the listeners' errors. Required.
	Logger *slog.Logger
	// Dropped, when set, is called with each org that leaves a catalog.
	Dropped func(org string)
}

// maxMisses bounds the orgs remembered as unknown; past it the oldest
// are forgotten first.
const maxMisses = 10000

// Registry is the fleet's tenants: the union of the upstreams' catalogs.
// It is safe for concurrent use.
type Registry struct {
	cfg   Config
	pools map[string]*pgxpool.Pool // by upstream name, for lookups

	mu     sync.RWMutex
	byOrg  map[string]policy.Tenant
	misses map[string]time.Time // orgs found nowhere, until when
	asking map[string]chan struct{}

	lookups, unknown, catalogQueries atomic.Int64
	refreshed                        sync.Map // upstream name → time.Time of its last load or notification
}

// New returns a Registry for cfg; Start loads it.
func New(cfg Config) (*Registry, error) {
	r := &Registry{cfg: cfg, pools: map[string]*pgxpool.Pool{}, byOrg: map[string]policy.Tenant{},
		misses: map[string]time.Time{}, asking: map[string]chan struct{}{}}
	for _, up := range cfg.Upstreams {
		pc, err := pgxpool.ParseConfig(up.DSN)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("upstream %q: %w", up.Name, err)
		}
		pc.MaxConns = 2
		pc.ConnConfig.RuntimeParams["application_name"] = "pgmigrate-proxy registry"
		pool, err := pgxpool.NewWithConfig(context.Background(), pc)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("upstream %q: %w", up.Name, err)
		}
		r.pools[up.Name] = pool
	}
	return r, nil
}

// Start loads every catalog that can be reached now (an upstream down is
// logged, and its listener keeps trying) and opens a lookup connection to
// each, then listens to each upstream until ctx ends.
func (r *Registry) Start(ctx context.Context) {
	var loads []chan struct{}
	for _, up := range r.cfg.Upstreams {
		loaded := make(chan struct{})
		loads = append(loads, loaded)
		go r.listen(ctx, up, sync.OnceFunc(func() { close(loaded) }))
	}
	for _, l := range loads {
		<-l
	}
	// A lookup that misses then costs a query, not a new connection.
	for _, p := range r.pools {
		p.Ping(ctx)
	}
}

// Close releases the lookup connections.
func (r *Registry) Close() {
	for _, p := range r.pools {
		p.Close()
	}
}

// Lookup implements policy.Registry: an org in memory, else one found in a
// catalog now, else policy.ErrUnknownTenant.
func (r *Registry) Lookup(ctx context.Context, org string) (policy.Tenant, error) {
	r.lookups.Add(1)
	for {
		r.mu.RLock()
		t, ok := r.byOrg[org]
		r.mu.RUnlock()
		if ok {
			return t, nil
		}
		r.mu.Lock()
		if until, missed := r.misses[org]; missed && time.Now().Before(until) {
			r.mu.Unlock()
			r.unknown.Add(1)
			return policy.Tenant{}, policy.ErrUnknownTenant
		}
		if wait, busy := r.asking[org]; busy {
			// Another session asks the catalogs: its answer is this one's.
			r.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return policy.Tenant{}, ctx.Err()
			}
		}
		done := make(chan struct{})
		r.asking[org] = done
		r.mu.Unlock()
		t, err := r.ask(ctx, org)
		r.mu.Lock()
		delete(r.asking, org)
		switch {
		case err == nil:
			r.byOrg[org] = t
		case errors.Is(err, policy.ErrUnknownTenant):
			r.missed(org)
			r.unknown.Add(1)
		}
		r.mu.Unlock()
		close(done)
		return t, err
	}
}

// missed remembers org as unknown for MissTTL; r.mu is held.
func (r *Registry) missed(org string) {
	now := time.Now()
	if len(r.misses) >= maxMisses {
		for o, until := range r.misses {
			if now.After(until) {
				delete(r.misses, o)
			}
		}
		for o := range r.misses {
			if len(r.misses) < maxMisses {
				break
			}
			delete(r.misses, o)
		}
	}
	r.misses[org] = now.Add(r.cfg.MissTTL)
}

// ask looks for org in every catalog.
func (r *Registry) ask(ctx context.Context, org string) (policy.Tenant, error) {
	var errs []error
	for _, up := range r.cfg.Upstreams {
		r.catalogQueries.Add(1)
		var schema string
		err := r.pools[up.Name].QueryRow(ctx, "SELECT schema FROM pgmigrate.tenants WHERE org = $1", org).Scan(&schema)
		switch {
		case err == nil:
			return policy.Tenant{Org: org, Upstream: up.Name, Database: up.Database, Schema: schema}, nil
		case errors.Is(err, pgx.ErrNoRows) || isUndefinedTable(err):
		default:
			errs = append(errs, fmt.Errorf("upstream %q: %w", up.Name, err))
		}
	}
	if len(errs) > 0 {
		return policy.Tenant{}, &UnreachableError{Org: org, Err: errors.Join(errs...)}
	}
	return policy.Tenant{}, policy.ErrUnknownTenant
}

// UnreachableError is a lookup that could not ask every catalog.
type UnreachableError struct {
	Org string
	Err error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot look for tenant %q in the tenant catalogs: %v", e.Org, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// SQLState implements the proxy's error classification.
func (e *UnreachableError) SQLState() string { return "08006" }

// isUndefinedTable reports a database with no catalog yet.
func isUndefinedTable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000")
}

// Catalogued returns org's tenant if a catalog loaded lists it, without
// asking the catalogs.
func (r *Registry) Catalogued(org string) (policy.Tenant, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.byOrg[org]
	return t, ok
}

// Tenants lists the tenants of every catalog, by org.
func (r *Registry) Tenants() []policy.Tenant {
	r.mu.RLock()
	out := make([]policy.Tenant, 0, len(r.byOrg))
	for _, t := range r.byOrg {
		out = append(out, t)
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b policy.Tenant) int { return strings.Compare(a.Org, b.Org) })
	return out
}

// listen keeps a connection to up listening on Channel, loading up's
// catalog whole on every (re)connection and every Refresh, and reading
// again each org notified; loaded is called after the first attempt.
func (r *Registry) listen(ctx context.Context, up *policy.Target, loaded func()) {
	delay := time.Second
	for ctx.Err() == nil {
		err := r.session(ctx, up, func() {
			loaded()
			delay = time.Second
		})
		loaded()
		if ctx.Err() != nil {
			return
		}
		r.cfg.Logger.Warn("tenant registry: lost the catalog's notifications; reconnecting", "upstream", up.Name, "error", err.Error())
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// session is one listening connection to up; it returns why it ended.
func (r *Registry) session(ctx context.Context, up *policy.Target, ready func()) error {
	cc, err := pgx.ParseConfig(up.DSN)
	if err != nil {
		return err
	}
	cc.RuntimeParams["application_name"] = "pgmigrate-proxy registry listener"
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return err
	}
	if err := r.load(ctx, conn, up); err != nil {
		return err
	}
	ready()
	for {
		wctx, cancel := context.WithTimeout(ctx, r.cfg.Refresh)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			if err := r.load(ctx, conn, up); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			if org, ok := strings.CutPrefix(n.Payload, "tenant "); ok {
				if err := r.reread(ctx, conn, up, org); err != nil {
					return err
				}
			}
		}
	}
}

// load replaces up's tenants with its catalog's.
func (r *Registry) load(ctx context.Context, conn *pgx.Conn, up *policy.Target) error {
	rows, err := conn.Query(ctx, "SELECT org, schema FROM pgmigrate.tenants")
	if err != nil && !isUndefinedTable(err) {
		return err
	}
	found := map[string]policy.Tenant{}
	if err == nil {
		var org, schema string
		if _, err := pgx.ForEachRow(rows, []any{&org, &schema}, func() error {
			found[org] = policy.Tenant{Org: org, Upstream: up.Name, Database: up.Database, Schema: schema}
			return nil
		}); err != nil && !isUndefinedTable(err) {
			return err
		}
	}
	var dropped []string
	r.mu.Lock()
	for org, t := range r.byOrg {
		if _, ok := found[org]; !ok && t.Upstream == up.Name {
			delete(r.byOrg, org)
			dropped = append(dropped, org)
		}
	}
	for org, t := range found {
		r.byOrg[org] = t
		delete(r.misses, org)
	}
	r.mu.Unlock()
	r.refreshed.Store(up.Name, time.Now())
	r.drop(dropped...)
	return nil
}

// reread reads one org's row of up's catalog again.
func (r *Registry) reread(ctx context.Context, conn *pgx.Conn, up *policy.Target, org string) error {
	var schema string
	err := conn.QueryRow(ctx, "SELECT schema FROM pgmigrate.tenants WHERE org = $1", org).Scan(&schema)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	r.mu.Lock()
	old, had := r.byOrg[org]
	gone := err != nil && had && old.Upstream == up.Name
	if gone {
		delete(r.byOrg, org)
	}
	if err == nil {
		r.byOrg[org] = policy.Tenant{Org: org, Upstream: up.Name, Database: up.Database, Schema: schema}
		delete(r.misses, org)
	}
	r.mu.Unlock()
	r.refreshed.Store(up.Name, time.Now())
	if gone {
		r.drop(org)
	}
	return nil
}

func (r *Registry) drop(orgs ...string) {
	if r.cfg.Dropped == nil {
		return
	}
	for _, org := range orgs {
		r.cfg.Dropped(org)
	}
}
