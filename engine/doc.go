// Package engine is the migration engine: typed, validated, transactional,
// retried and idempotent DDL for tenant schemas, usable on its own as a
// library.
//
//	cfg, _ := pgxpool.ParseConfig(dsn)
//	engine.ConfigurePool(cfg)
//	pool, _ := pgxpool.NewWithConfig(ctx, cfg)
//	eng := engine.New(pool, engine.DefaultOptions())
//	res, err := eng.Apply(engine.WithActor(ctx, "alice", "psql"), "acme-corp", &engine.AddField{Model: "invoice", Field: spec})
//
// Every mutating command is an Operation, one file each. An operation is
// compiled, then executed: Validate checks its input and Plan derives the
// SQL from a State (the live catalog of the tenant's table plus the engine's
// metadata) without I/O, which is what the golden tests in testdata/plans
// check. Plan (the method of Engine) stops there and reports the statements
// (dry run); Apply runs them:
//
//  1. the tenant's lock: within an engine, one Apply per org at a time
//     (the others wait, as long as their context allows, before they take
//     any connection); across engines on several pools or machines, the
//     org's row of pgmigrate.locks, locked for the whole attempt by a
//     transaction on a connection of its own. Tenant roles cannot reach
//     schema pgmigrate, so they can neither take the lock nor hold it. An
//     attempt holds two connections, so an engine runs at most half its
//     pool's worth of attempts at once, and the others wait before they
//     take any;
//  2. the tenant's unfinished intents (see below) are completed or undone;
//  3. the state is read from the live catalog, so drift made by hand is
//     seen: a spec already in place is Unchanged, a different one a typed
//     conflict error, and what a run stopped between phases left (a
//     column without its unique constraint or foreign key, an engine-named
//     index invalid or unattached, a foreign key NOT VALID) is finished;
//  4. each Phase of the plan runs in a transaction with SET LOCAL
//     lock_timeout (or, for CREATE INDEX CONCURRENTLY, on its own), the
//     last one together with the metadata change and a history row, so DDL
//     and metadata commit together or not at all;
//  5. transient failures (55P03, 40P01, 40001, 55006, 57P01, 57P02, 57P03,
//     53300, no free connection in the pool within Options.AcquireTimeout,
//     a lost connection) are retried from step 1, with exponential backoff
//     and jitter: the next attempt plans again from the live state, so it
//     goes on from the phases that committed; a failure that is not
//     retried undoes them. A COMMIT whose answer was lost is resolved by
//     looking for the history row.
//
// Crash safety. A plan of several phases is journaled in
// pgmigrate.intents (intent.go): its row, written with the first phase
// (or before it, for an online one), records the operation, the plan, the
// phases committed and the statements that undo them, and is deleted with
// the last phase. Whoever next takes the tenant's lock (an Apply on any
// engine, or a sweep: Engine.Sweep, which the proxy runs on each engine when
// it makes it and every minute) finds
// the row of an operation that stopped half-way, whatever stopped it, and
// completes it by planning it again from the live state, or undoes it if
// it had failed or can no longer complete. Verify lists the rows not
// closed yet. A test hook (Engine.fault) stops operations after any phase,
// so that the tests can crash them there.
//
// Tenant authority. The tenant boundary is PostgreSQL's own privileges. The
// engine's role (the pool's user; CREATEROLE and the ownership of the
// database are enough, no superuser needed) owns the tenant schemas and
// the tables it creates; each tenant has a NOLOGIN tenant role named like
// the org, made by CreateTenant, which may use the schema and read and
// write those tables, but not alter or drop them. A role that exists with
// the org's name, or the login role's, is taken (or dropped by DropTenant)
// only if the engine could have made it (UnsafeRoleError otherwise). The
// engine acts only on tables its role owns, in the tenant's schema: every
// model operation but AdoptModel refuses any other (NotOwnedError) before
// reading a row of it, and AdoptModel refuses a table with anything that
// would run as its owner (UnsupportedTableError). Everything the engine
// runs does so with search_path pinned to
// pg_catalog and row_security off, so that no tenant-written code
// (function, operator, policy, trigger) runs with the engine's rights;
// ConfigurePool pins them for the pool's sessions too. Posture reports
// what weakens the separation: login roles that reach several tenants,
// PUBLIC grants on tenant schemas, tenant roles that may create where raw
// DDL is denied. WithActor names who asked for a change, which history
// records.
//
// The metadata catalog lives in schema pgmigrate of the database (tenants,
// models, fields, history, locks, intents, version), closed to PUBLIC, and is
// created or upgraded by Init, under a lock on pgmigrate.version, which
// Apply and Plan call on first use.
//
// Errors about input or state are typed (InvalidSpecError, UnknownModelError,
// FieldConflictError, NotOwnedError, PoolTimeoutError, ...), each with a
// SQLState method and, where useful, Detail and Hint; PostgreSQL's own
// errors arrive as *pgconn.PgError.
//
// The engine logs each applied change, retry and recovery to
// Options.Logger, in the seed engine's shape ("ALTER TABLE ADD COLUMN"
// with org, table, fields, duration_ms, attempt, applied_by, trace_id),
// reports lock waits, retries and intents to Options.Recorder (for
// metrics), and makes OpenTelemetry spans: one per operation, one per
// attempt and one per statement, with the stable database semantic
// conventions. A login role's password shows in none of them, nor in
// results or history.
package engine
