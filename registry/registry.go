package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgmigrate/pgmigrate-proxy/engine"
	"github.com/pgmigrate/pgmigrate-proxy/policy"
)

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

// catalogTimeout bounds a listener's connection, each read of a catalog,
// and the opening of the lookup connections at start: an upstream that
// does not answer delays the start by no more, and cannot hold a listener.
const catalogTimeout = 10 * time.Second

// maxBatch is the most notified orgs a listener reads again in one query.
const maxBatch = 256

// Registry is the fleet's tenants: the union of the upstreams' catalogs.
// It is safe for concurrent use.
type Registry struct {
	cfg   Config
	pools map[string]*pgxpool.Pool // by upstream name: lookups and listeners

	mu    sync.RWMutex
	byOrg map[string]policy.Tenant
	// gen counts the changes to byOrg, and stored says when each entry
	// was stored: a load drops only the entries it could have seen.
	gen    uint64
	stored map[string]uint64
	// misses are the orgs found nowhere, until when; missRing holds them
	// in the order they were missed, missNext the oldest.
	misses   map[string]time.Time
	missRing []string
	missNext int
	// asking are the orgs being looked for in the catalogs; a listener
	// that reads one of them meanwhile makes its answer stale.
	asking    map[string]*question
	refreshed map[string]time.Time // by upstream: its last load

	lookups, unknown, catalogQueries atomic.Int64
}

type question struct {
	done  chan struct{}
	stale bool
}

// New returns a Registry for cfg; Start loads it.
func New(cfg Config) (*Registry, error) {
	r := &Registry{cfg: cfg, pools: map[string]*pgxpool.Pool{}, byOrg: map[string]policy.Tenant{}, stored: map[string]uint64{},
		misses: map[string]time.Time{}, asking: map[string]*question{}, refreshed: map[string]time.Time{}}
	for _, up := range cfg.Upstreams {
		pc, err := pgxpool.ParseConfig(up.DSN)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("upstream %q: %w", up.Name, err)
		}
		pc.MaxConns = 2
		pc.ConnConfig.RuntimeParams["application_name"] = "pgmigrate-proxy registry"
		engine.ConfigurePool(pc)
		pool, err := pgxpool.NewWithConfig(context.Background(), pc)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("upstream %q: %w", up.Name, err)
		}
		r.pools[up.Name] = pool
	}
	return r, nil
}

// Start loads every catalog that can be reached within catalogTimeout (an
// upstream down is logged, and its listener keeps trying) and opens a
// lookup connection to each, so that a miss costs a query, not a
// connection; then it listens to each upstream until ctx ends.
func (r *Registry) Start(ctx context.Context) {
	var wg sync.WaitGroup
	for _, up := range r.cfg.Upstreams {
		loaded := make(chan struct{})
		go r.listen(ctx, up, sync.OnceFunc(func() { close(loaded) }))
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, catalogTimeout)
			defer cancel()
			r.pools[up.Name].Ping(pctx)
			<-loaded
		})
	}
	wg.Wait()
}

// Close releases the catalogs' connections.
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
		var until time.Time
		if !ok {
			until = r.misses[org]
		}
		r.mu.RUnlock()
		switch {
		case ok:
			return t, nil
		case time.Now().Before(until):
			r.unknown.Add(1)
			return policy.Tenant{}, policy.ErrUnknownTenant
		}
		r.mu.Lock()
		if q, busy := r.asking[org]; busy {
			// Another session asks the catalogs: its answer is this one's.
			r.mu.Unlock()
			select {
			case <-q.done:
				continue
			case <-ctx.Done():
				return policy.Tenant{}, ctx.Err()
			}
		}
		q := &question{done: make(chan struct{})}
		r.asking[org] = q
		r.mu.Unlock()
		t, err := r.ask(ctx, org)
		r.mu.Lock()
		delete(r.asking, org)
		switch {
		case q.stale:
			// A listener read org meanwhile: memory is the answer.
		case err == nil:
			r.store(t)
		case errors.Is(err, policy.ErrUnknownTenant):
			r.missed(org)
		}
		r.mu.Unlock()
		close(q.done)
		if q.stale {
			continue
		}
		if errors.Is(err, policy.ErrUnknownTenant) {
			r.unknown.Add(1)
		}
		return t, err
	}
}

// Forget forgets that org was found nowhere: create_tenant has just made
// it, before its notification is in.
func (r *Registry) Forget(org string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.misses, org)
}

// store puts t in memory; r.mu is held.
func (r *Registry) store(t policy.Tenant) {
	r.gen++
	r.byOrg[t.Org], r.stored[t.Org] = t, r.gen
	delete(r.misses, t.Org)
}

// forget takes org out of memory; r.mu is held.
func (r *Registry) forget(org string) {
	delete(r.byOrg, org)
	delete(r.stored, org)
}

// missed remembers org as unknown for MissTTL, forgetting the oldest
// remembered past maxMisses; r.mu is held.
func (r *Registry) missed(org string) {
	if _, ok := r.misses[org]; !ok {
		if len(r.missRing) < maxMisses {
			r.missRing = append(r.missRing, org)
		} else {
			delete(r.misses, r.missRing[r.missNext])
			r.missRing[r.missNext] = org
			r.missNext = (r.missNext + 1) % maxMisses
		}
	}
	r.misses[org] = time.Now().Add(r.cfg.MissTTL)
}

// ask looks for org in every catalog.
func (r *Registry) ask(ctx context.Context, org string) (policy.Tenant, error) {
	var errs []error
	for _, up := range r.cfg.Upstreams {
		r.catalogQueries.Add(1)
		found, err := engine.Registered(ctx, r.pools[up.Name], []string{org})
		if err != nil {
			errs = append(errs, fmt.Errorf("upstream %q: %w", up.Name, err))
			continue
		}
		if schema, ok := found[org]; ok {
			return tenant(up, org, schema), nil
		}
	}
	if len(errs) > 0 {
		return policy.Tenant{}, &UnreachableError{Org: org, Err: errors.Join(errs...)}
	}
	return policy.Tenant{}, policy.ErrUnknownTenant
}

func tenant(up *policy.Target, org, schema string) policy.Tenant {
	return policy.Tenant{Org: org, Upstream: up.Name, Database: up.Database, Schema: schema}
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

// listen keeps a connection to up listening on engine.TenantsChannel,
// loading up's catalog whole on every (re)connection and every Refresh,
// and reading again the orgs notified; loaded is called after the first
// attempt.
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

// session is one listening connection to up, taken from its pool (so
// configured as the engine's are); it returns why it ended.
func (r *Registry) session(ctx context.Context, up *policy.Target, ready func()) error {
	cctx, cancel := context.WithTimeout(ctx, catalogTimeout)
	defer cancel()
	pc, err := r.pools[up.Name].Acquire(cctx)
	if err != nil {
		return err
	}
	conn := pc.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(cctx, "SET application_name = 'pgmigrate-proxy registry listener'; LISTEN "+engine.TenantsChannel); err != nil {
		return err
	}
	if err := r.load(ctx, conn, up); err != nil {
		return err
	}
	ready()
	next := time.Now().Add(r.cfg.Refresh)
	for {
		wctx, cancel := context.WithDeadline(ctx, next)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			if err := r.load(ctx, conn, up); err != nil {
				return err
			}
			next = time.Now().Add(r.cfg.Refresh)
		case err != nil:
			return err
		default:
			orgs, err := r.notified(ctx, conn, n.Payload)
			if err != nil {
				return err
			}
			if err := r.reread(ctx, conn, up, orgs); err != nil {
				return err
			}
		}
	}
}

// notified returns the valid org names of payload and of the
// notifications already arrived after it, up to maxBatch of them, without
// repeats: a flood of notifications (any session may send them) costs a
// query per batch.
func (r *Registry) notified(ctx context.Context, conn *pgx.Conn, payload string) ([]string, error) {
	orgs := map[string]bool{}
	for len(orgs) < maxBatch {
		if policy.ValidOrg(payload) {
			orgs[payload] = true
		}
		wctx, cancel := context.WithTimeout(ctx, time.Millisecond)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			break
		}
		if err != nil {
			return nil, err
		}
		payload = n.Payload
	}
	return slices.Collect(maps.Keys(orgs)), nil
}

// load replaces up's tenants with its catalog's.
func (r *Registry) load(ctx context.Context, conn *pgx.Conn, up *policy.Target) error {
	r.mu.RLock()
	seen := r.gen
	r.mu.RUnlock()
	qctx, cancel := context.WithTimeout(ctx, catalogTimeout)
	defer cancel()
	found, err := engine.Registered(qctx, conn, nil)
	if err != nil {
		return err
	}
	var dropped []string
	r.mu.Lock()
	for org, t := range r.byOrg {
		// An entry stored after the catalog was read may be newer.
		if _, ok := found[org]; !ok && t.Upstream == up.Name && r.stored[org] <= seen {
			r.forget(org)
			dropped = append(dropped, org)
		}
	}
	for org, schema := range found {
		r.store(tenant(up, org, schema))
	}
	r.staleQuestions()
	r.refreshed[up.Name] = time.Now()
	r.mu.Unlock()
	r.drop(dropped)
	return nil
}

// reread reads orgs' rows of up's catalog again.
func (r *Registry) reread(ctx context.Context, conn *pgx.Conn, up *policy.Target, orgs []string) error {
	if len(orgs) == 0 {
		return nil
	}
	qctx, cancel := context.WithTimeout(ctx, catalogTimeout)
	defer cancel()
	found, err := engine.Registered(qctx, conn, orgs)
	if err != nil {
		return err
	}
	var dropped []string
	r.mu.Lock()
	for _, org := range orgs {
		if schema, ok := found[org]; ok {
			r.store(tenant(up, org, schema))
		} else if t, had := r.byOrg[org]; had && t.Upstream == up.Name {
			r.forget(org)
			dropped = append(dropped, org)
		}
	}
	r.staleQuestions()
	r.mu.Unlock()
	r.drop(dropped)
	return nil
}

// staleQuestions marks the catalogs' answers in flight stale: memory is
// newer; r.mu is held.
func (r *Registry) staleQuestions() {
	for _, q := range r.asking {
		q.stale = true
	}
}

func (r *Registry) drop(orgs []string) {
	if r.cfg.Dropped == nil {
		return
	}
	for _, org := range orgs {
		r.cfg.Dropped(org)
	}
}
