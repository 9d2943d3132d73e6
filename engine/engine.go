package engine

import (
	"context"
	"log/slog"
	"sync"
	"time"

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

// Engine runs migrations for the tenants of one database. It is safe for
// concurrent use; operations on one tenant are serialised by an advisory
// lock, across engines and machines.
type Engine struct {
	pool   *pgxpool.Pool
	opts   Options
	tracer trace.Tracer
	log    *slog.Logger

	initMu sync.Mutex
	inited bool
}

// New returns an Engine using pool, whose user owns the tenant schemas.
func New(pool *pgxpool.Pool, opts Options) *Engine {
	if opts.Retry.MaxAttempts < 1 {
		opts.Retry.MaxAttempts = 1
	}
	tp := opts.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{pool: pool, opts: opts, tracer: tp.Tracer("github.com/pgmigrate/pgmigrate-proxy/engine"), log: log}
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
