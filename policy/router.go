package policy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"
)

// Tenant is where an org's data lives.
type Tenant struct {
	Org      string
	Upstream string // the name of an Upstream
	Database string
	Schema   string
}

// ErrUnknownTenant is returned by a Registry for an org it does not know.
var ErrUnknownTenant = errors.New("unknown tenant")

// Registry finds tenants by org.
type Registry interface {
	Lookup(ctx context.Context, org string) (Tenant, error)
}

// Catalog is a Registry that also lists its tenants: the upstreams'
// catalogs (see package registry).
type Catalog interface {
	Registry
	Tenants() []Tenant
}

// StaticRegistry serves a fixed set of tenants, keyed by org.
type StaticRegistry map[string]Tenant

// Lookup implements Registry.
func (r StaticRegistry) Lookup(_ context.Context, org string) (Tenant, error) {
	t, ok := r[org]
	if !ok {
		return Tenant{}, ErrUnknownTenant
	}
	return t, nil
}

// Target says how to reach an upstream cluster.
type Target struct {
	Name     string
	Network  string // "tcp" or "unix"
	Address  string
	Database string // the database named in the upstream's DSN
	// TLS is nil for a plain connection. With TLSOptional, a server that
	// refuses TLS is used without it (sslmode=prefer).
	TLS         *tls.Config
	TLSOptional bool
	// DSN carries the engine's credentials, for health checks.
	DSN string
}

func parseUpstream(u Upstream) (*Target, error) {
	pc, err := pgconn.ParseConfig(u.DSN)
	if err != nil {
		return nil, err // pgconn redacts the password
	}
	network, address := pgconn.NetworkAddress(pc.Host, pc.Port)
	t := &Target{Name: u.Name, Network: network, Address: address, Database: pc.Database, TLS: pc.TLSConfig, DSN: u.DSN}
	for _, fb := range pc.Fallbacks {
		if fb.Host == pc.Host && fb.Port == pc.Port && fb.TLSConfig == nil {
			t.TLSOptional = true
		}
	}
	if t.Database == "" {
		return nil, errors.New("names no database")
	}
	return t, nil
}

// Route is the answer for one client session.
type Route struct {
	// Org is empty for an unscoped admin session.
	Org      string
	Upstream *Target
	Database string
	// Schema is the tenant's schema, empty for an admin session.
	Schema string
}

// Request is what a client says about where it wants to go.
type Request struct {
	User string
	// Database is the startup database parameter; empty means the user's
	// name, as in PostgreSQL.
	Database string
	// Org is the org named by the pgmigrate.org startup option, if any.
	Org string
}

// UnknownDatabaseError is returned for a database name that is neither a
// tenant nor, for an admin, an upstream database.
type UnknownDatabaseError struct{ Database string }

func (e *UnknownDatabaseError) Error() string {
	return fmt.Sprintf("database %q does not exist", e.Database)
}

// SQLState implements the proxy's error classification.
func (e *UnknownDatabaseError) SQLState() string { return "3D000" }

// OrgConflictError is returned when the database name and the
// pgmigrate.org option name different orgs.
type OrgConflictError struct{ Database, Org string }

func (e *OrgConflictError) Error() string {
	return fmt.Sprintf("database %q and option pgmigrate.org=%q name different orgs", e.Database, e.Org)
}

// SQLState implements the proxy's error classification.
func (e *OrgConflictError) SQLState() string { return "22023" }

// Router routes sessions to tenants. It is safe for concurrent use, and
// Update replaces its tables without disturbing routes already handed out.
type Router struct {
	state atomic.Pointer[routes]
}

type routes struct {
	registry  StaticRegistry // the config's tenants
	catalog   Catalog        // the catalogs', when set: after the config's
	tenants   []Tenant
	upstreams []*Target
	rules     Rules
}

// NewRouter builds a Router from a validated config.
func NewRouter(cfg *Config) (*Router, error) {
	r := &Router{}
	return r, r.Update(cfg)
}

// Update replaces the router's upstreams, tenants and admins with cfg's.
func (r *Router) Update(cfg *Config) error {
	reg := StaticRegistry{}
	rt := &routes{registry: reg, rules: cfg.Policy}
	if old := r.state.Load(); old != nil {
		rt.catalog = old.catalog
	}
	for _, u := range cfg.Upstreams {
		t, err := parseUpstream(u)
		if err != nil {
			return err
		}
		rt.upstreams = append(rt.upstreams, t)
	}
	for _, t := range cfg.Tenants {
		reg[t.Org] = Tenant(t)
		rt.tenants = append(rt.tenants, Tenant(t))
	}
	r.state.Store(rt)
	return nil
}

// SetCatalog has the router look up, after the config's tenants, those
// of c.
func (r *Router) SetCatalog(c Catalog) {
	rt := *r.state.Load()
	rt.catalog = c
	r.state.Store(&rt)
}

// Tenants lists the configured tenants, in the config's order, then the
// catalog's others, by org.
func (r *Router) Tenants() []Tenant {
	rt := r.state.Load()
	if rt.catalog == nil {
		return rt.tenants
	}
	out := slices.Clip(rt.tenants)
	for _, t := range rt.catalog.Tenants() {
		if _, ok := rt.registry[t.Org]; !ok {
			out = append(out, t)
		}
	}
	return out
}

// Rules returns the policy in force.
func (r *Router) Rules() Rules { return r.state.Load().rules }

// Upstreams lists the configured upstreams.
func (r *Router) Upstreams() []*Target { return r.state.Load().upstreams }

// Route decides where a session goes.
func (r *Router) Route(ctx context.Context, req Request) (Route, error) {
	rt := r.state.Load()
	database := req.Database
	if req.Org == "" {
		if database == "" {
			database = req.User
		}
		route, err := rt.tenant(ctx, database)
		if err == nil {
			return route, nil
		}
		if slices.Contains(rt.rules.Admins, req.User) {
			for _, up := range rt.upstreams {
				if up.Database == database {
					return Route{Upstream: up, Database: database}, nil
				}
			}
		}
		if errors.Is(err, ErrUnknownTenant) {
			return Route{}, &UnknownDatabaseError{Database: database}
		}
		return Route{}, err
	}
	route, err := rt.tenant(ctx, req.Org)
	if errors.Is(err, ErrUnknownTenant) {
		return Route{}, &UnknownDatabaseError{Database: req.Org}
	}
	if err != nil {
		return Route{}, err
	}
	if database != "" && database != req.Org && database != route.Database {
		return Route{}, &OrgConflictError{Database: database, Org: req.Org}
	}
	return route, nil
}

// Tenant returns the route of an org's tenant sessions, or an
// *UnknownDatabaseError (3D000) for an org that is not a tenant.
func (r *Router) Tenant(ctx context.Context, org string) (Route, error) {
	route, err := r.state.Load().tenant(ctx, org)
	if errors.Is(err, ErrUnknownTenant) {
		return Route{}, &UnknownDatabaseError{Database: org}
	}
	return route, err
}

func (rt *routes) tenant(ctx context.Context, org string) (Route, error) {
	if !ValidOrg(org) {
		return Route{}, ErrUnknownTenant
	}
	t, err := rt.registry.Lookup(ctx, org)
	if errors.Is(err, ErrUnknownTenant) && rt.catalog != nil {
		t, err = rt.catalog.Lookup(ctx, org)
	}
	if err != nil {
		return Route{}, err
	}
	for _, up := range rt.upstreams {
		if up.Name == t.Upstream {
			return Route{Org: t.Org, Upstream: up, Database: t.Database, Schema: t.Schema}, nil
		}
	}
	return Route{}, fmt.Errorf("tenant %q names unknown upstream %q", t.Org, t.Upstream)
}

// CheckUpstreams connects to every upstream with its DSN and reports the
// first that cannot be reached.
func (r *Router) CheckUpstreams(ctx context.Context) error {
	for _, up := range r.Upstreams() {
		conn, err := pgconn.Connect(ctx, up.DSN)
		if err != nil {
			return fmt.Errorf("upstream %q: %w", up.Name, err)
		}
		conn.Close(ctx)
	}
	return nil
}
