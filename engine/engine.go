package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// Options tune an Engine.
type Options struct {
	// LockTimeout is SET LOCAL lock_timeout in every migration
	// transaction: DDL waits at most this long for a table lock, then the
	// attempt fails with 55P03 and is retried, instead of queueing every
	// other query on the table behind it.
	LockTimeout time.Duration
	// StatementTimeout is SET LOCAL statement_timeout; 0 means none.
	StatementTimeout time.Duration
	// AcquireTimeout bounds every wait for a connection of the pool; a
	// wait that lasts it fails with PoolTimeoutError, which is retried.
	// 0 means 5s.
	AcquireTimeout time.Duration
	// Retry is the budget for transient errors.
	Retry Retry
	// AllowedSchemas are schemas other than the tenant's own that
	// references may point into.
	AllowedSchemas []string
	// TracerProvider makes the engine's spans; nil means the global one.
	TracerProvider trace.TracerProvider
	// Logger receives one line per applied change and per retry; nil
	// discards them.
	Logger *slog.Logger
	// Recorder hears lock waits, retries and recoveries, for metrics;
	// nil means none.
	Recorder Recorder
}

// Retry is an exponential backoff with full jitter: before attempt n+1 the
// engine sleeps a random time up to min(Delay*2^(n-1), MaxDelay).
type Retry struct {
	MaxAttempts int
	Delay       time.Duration
	MaxDelay    time.Duration
}

// SeedRetry is the retry budget of the engine this one replaces.
var SeedRetry = Retry{MaxAttempts: 3, Delay: time.Second, MaxDelay: 30 * time.Second}

// DefaultOptions returns a one-second lock timeout and SeedRetry.
func DefaultOptions() Options {
	return Options{LockTimeout: time.Second, Retry: SeedRetry}
}

// defaultAcquireTimeout is the AcquireTimeout of Options that leave it 0.
const defaultAcquireTimeout = 5 * time.Second

// Engine runs migrations for the tenants of one database. It is safe for
// concurrent use; operations on one tenant are serialised by a row lock in
// the metadata catalog, across engines and machines, and within an engine
// before they take any connection.
type Engine struct {
	pool    *pgxpool.Pool
	opts    Options
	tracer  trace.Tracer
	log     *slog.Logger
	tenants tenantLocks
	// admitted holds a token per Apply attempt running (see admit).
	admitted chan struct{}

	initMu sync.Mutex
	inited bool

	// stopped ends when Close is called: the sweeps, and the undoing of
	// failed operations, which outlives their commands' contexts.
	stopped context.Context
	stop    context.CancelFunc

	// fault, set by tests, is called before an operation's first phase
	// (phase 0) and after each phase that commits but its last; an error
	// abandons the operation there, leaving what committed and its intent
	// as a crash would.
	fault func(ctx context.Context, kind string, phase int) error
}

// New returns an Engine using pool, whose user (the engine's role) owns the
// tenant schemas and the tables the engine manages. The role need not be a
// superuser: CREATEROLE and the ownership of the database are enough. The
// pool's config should have gone through ConfigurePool.
func New(pool *pgxpool.Pool, opts Options) *Engine {
	if opts.Retry.MaxAttempts < 1 {
		opts.Retry.MaxAttempts = 1
	}
	if opts.AcquireTimeout <= 0 {
		opts.AcquireTimeout = defaultAcquireTimeout
	}
	tp := opts.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Recorder == nil {
		opts.Recorder = nopRecorder{}
	}
	stopped, stop := context.WithCancel(context.Background())
	return &Engine{pool: pool, opts: opts, tracer: tp.Tracer("github.com/pgmigrate/pgmigrate-proxy/engine"), log: log,
		admitted: make(chan struct{}, max(1, pool.Config().MaxConns/2)), stopped: stopped, stop: stop}
}

// Close stops the engine's sweeps and any undoing in flight, whose
// intents the next recovery finishes or undoes, so that a process that
// must exit (its drain timeout spent) does not wait for them. It does not
// close the pool.
func (e *Engine) Close() { e.stop() }

// detached is ctx without its cancellation, which ends instead when the
// engine is closed: the context of work that must outlive a cancelled
// command, but not the process.
func (e *Engine) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(e.stopped, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// Status says what an operation did.
type Status string

// The statuses of a Result.
const (
	Applied   Status = "applied"
	Unchanged Status = "unchanged"
	Planned   Status = "planned"
)

// Result is the outcome of Apply or Plan.
type Result struct {
	Status     Status
	Org        string
	Model      string
	Field      string
	Statements []string
	Attempts   int
	Duration   time.Duration
	// Login is the tenant's login role of a CreateTenant with Login, and
	// Password its password, returned this once, when Apply made the role.
	Login, Password string
}

// ConfigurePool pins search_path and row_security in the startup of every
// connection of a pool the engine uses, so that even a statement outside
// the engine's transactions resolves no name through a schema a tenant
// can write to and applies no tenant's row policy. Call it on the config
// before pgxpool.NewWithConfig.
func ConfigurePool(cfg *pgxpool.Config) {
	cfg.ConnConfig.RuntimeParams["search_path"] = pinnedSearchPath
	cfg.ConnConfig.RuntimeParams["row_security"] = "off"
}

// actor is who asked for an operation.
type actor struct{ user, application string }

type actorKey struct{}

// WithActor returns ctx saying that user, connected with application (its
// application_name), asks for the operations applied with it: history
// records them as applied_by and application, and the log line of an
// applied change says applied_by. Without it, applied_by is the engine's
// role.
func WithActor(ctx context.Context, user, application string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor{user, application})
}

// actorOf returns the actor of ctx, empty if none.
func actorOf(ctx context.Context) actor {
	a, _ := ctx.Value(actorKey{}).(actor)
	return a
}

// pinnedSearchPath is the search_path of everything the engine runs:
// schemas no tenant can create objects in, so that no name in the
// engine's SQL resolves to a tenant's function, operator or type.
const pinnedSearchPath = "pg_catalog, pg_temp"

// setting is one run-time parameter of the engine's transactions.
type setting struct{ name, value string }

// settings are what every statement of the engine runs under: literals as
// the engine writes them, the pinned search_path, no row security (the
// engine reads only its own tables, and a policy that would apply is an
// error, not a filter), and the timeouts.
func (e *Engine) settings() []setting {
	return []setting{
		{"standard_conforming_strings", "on"},
		{"search_path", pinnedSearchPath},
		{"row_security", "off"},
		{"lock_timeout", itoa(int(e.opts.LockTimeout.Milliseconds()))},
		{"statement_timeout", itoa(int(e.opts.StatementTimeout.Milliseconds()))},
	}
}

// set renders the settings as commands (SET or SET LOCAL), and reset the
// commands that return them to the session's defaults.
func (e *Engine) set(command string) string {
	var b strings.Builder
	for _, s := range e.settings() {
		fmt.Fprintf(&b, "%s %s = %s; ", command, s.name, s.value)
	}
	return b.String()
}

// setConfig renders settings as one statement that sets them for the
// transaction (set_config, as SET LOCAL does).
func setConfig(settings []setting) (sql string, args []any) {
	calls := make([]string, len(settings))
	for i, s := range settings {
		calls[i] = fmt.Sprintf("pg_catalog.set_config($%d, $%d, true)", 2*i+1, 2*i+2)
		args = append(args, s.name, s.value)
	}
	return "SELECT " + strings.Join(calls, ", "), args
}

func (e *Engine) reset() string {
	var b strings.Builder
	for _, s := range e.settings() {
		fmt.Fprintf(&b, "RESET %s; ", s.name)
	}
	return b.String()
}

// acquire takes a connection of the pool, waiting at most the acquire
// timeout for one to be free. Every use of the pool goes through it.
func (e *Engine) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	wait, cancel := context.WithTimeout(ctx, e.opts.AcquireTimeout)
	defer cancel()
	conn, err := e.pool.Acquire(wait)
	if err != nil && ctx.Err() == nil && errors.Is(wait.Err(), context.DeadlineExceeded) {
		return nil, &PoolTimeoutError{Wait: e.opts.AcquireTimeout}
	}
	return conn, err
}

// admit waits, as long as ctx allows, until the Apply attempt that calls it
// may run; release lets the next one run. An attempt holds two connections
// of the pool (the tenant's lock, then its work), so at most half the
// pool's connections' worth of attempts run at once: each then finds its
// second connection, rather than all of them holding their first and
// waiting, until the acquire timeout, for one that none gives back.
func (e *Engine) admit(ctx context.Context) (release func(), err error) {
	select {
	case e.admitted <- struct{}{}:
		return func() { <-e.admitted }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// readOnly are the options of the engine's reads: one consistent snapshot.
var readOnly = pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}

// poolTx runs fn in a transaction of opts on a connection of the pool.
// Transient failures (a connection lost, a server shutting down or
// starting up) are retried, as Apply's are, each time on another
// connection: the pool drops one that failed, and pings one that has been
// idle before handing it out.
func (e *Engine) poolTx(ctx context.Context, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	return e.retry(ctx, func(int) error {
		pc, err := e.acquire(ctx)
		if err != nil {
			return err
		}
		defer pc.Release()
		return e.inTx(ctx, pc.Conn(), opts, fn)
	}, nil)
}

// inTx runs fn in a transaction of opts on conn, under the engine's
// settings, and commits unless fn fails.
func (e *Engine) inTx(ctx context.Context, conn *pgx.Conn, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, conn, opts, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, e.set("SET LOCAL")); err != nil {
			return err
		}
		return fn(tx)
	})
}

// ensureCatalog creates or upgrades the metadata catalog once per engine.
func (e *Engine) ensureCatalog(ctx context.Context) error {
	e.initMu.Lock()
	defer e.initMu.Unlock()
	if e.inited {
		return nil
	}
	if err := e.Init(ctx); err != nil {
		return err
	}
	e.inited = true
	return nil
}

// forOrg makes sure the catalog exists and runs fn holding org's slot: an
// engine runs one call per org at a time (Apply, Plan, a read), and the
// others wait, as long as their ctx allows, without holding any connection
// of the pool. So the sessions of one org, however many, never hold more
// of the pool than one command needs, and other orgs are served.
func (e *Engine) forOrg(ctx context.Context, org string, fn func() error) error {
	unlock, err := e.tenants.lock(ctx, org)
	if err != nil {
		return err
	}
	defer unlock()
	if err := e.ensureCatalog(ctx); err != nil {
		return err
	}
	return fn()
}

// readTx runs fn in a read-only transaction on a connection of the pool
// (see poolTx), holding org's slot.
func (e *Engine) readTx(ctx context.Context, org string, fn func(pgx.Tx) error) error {
	return e.forOrg(ctx, org, func() error { return e.poolTx(ctx, readOnly, fn) })
}

// tenantLocks hold a slot per org with a call in flight (see forOrg).
type tenantLocks struct {
	mu    sync.Mutex
	slots map[string]*tenantSlot
}

type tenantSlot struct {
	sem   chan struct{}
	users int // calls holding or waiting for sem
}

// lock takes org's slot, waiting as long as ctx allows; unlock gives it
// back.
func (l *tenantLocks) lock(ctx context.Context, org string) (unlock func(), err error) {
	l.mu.Lock()
	if l.slots == nil {
		l.slots = make(map[string]*tenantSlot)
	}
	s := l.slots[org]
	if s == nil {
		s = &tenantSlot{sem: make(chan struct{}, 1)}
		l.slots[org] = s
	}
	s.users++
	l.mu.Unlock()
	select {
	case s.sem <- struct{}{}:
		return func() {
			<-s.sem
			l.leave(org, s)
		}, nil
	case <-ctx.Done():
		l.leave(org, s)
		return nil, ctx.Err()
	}
}

// leave forgets org's slot once no call holds or waits for it.
func (l *tenantLocks) leave(org string, s *tenantSlot) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.users--; s.users == 0 {
		delete(l.slots, org)
	}
}
