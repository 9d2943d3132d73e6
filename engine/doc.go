// Package engine is the migration engine: typed, validated, transactional,
// retried and idempotent DDL for tenant schemas, usable on its own as a
// library.
//
//	eng := engine.New(pool, engine.DefaultOptions())
//	res, err := eng.Apply(ctx, "acme-corp", &engine.AddField{Model: "invoice", Field: spec})
//
// Every mutating command is an Operation, one file each. An operation is
// compiled, then executed: Validate checks its input and Plan derives the
// SQL from a State (the live catalog of the tenant's table plus the engine's
// metadata) without I/O, which is what the golden tests in testdata/plans
// check. Plan (the method of Engine) stops there and reports the statements
// (dry run); Apply runs them:
//
//  1. the tenant's advisory lock, so engines on several pools or machines
//     never interleave on one tenant;
//  2. the state is read from the live catalog, so drift made by hand is
//     seen: a spec already in place is Unchanged, a different one a typed
//     conflict error;
//  3. each Phase of the plan runs in a transaction with SET LOCAL
//     lock_timeout (or, for CREATE INDEX CONCURRENTLY, on its own), the
//     last one together with the metadata change and a history row, so DDL
//     and metadata commit together or not at all;
//  4. transient failures (55P03, 40P01, 40001, 55006, 57P01, 53300, a lost
//     connection) are retried from step 1 after undoing any phase that had
//     committed, with exponential backoff and jitter; a COMMIT whose answer
//     was lost is resolved by looking for the history row.
//
// The metadata catalog lives in schema pgmigrate of the database (tenants,
// models, fields, history, version) and is created or upgraded by Init,
// which Apply and Plan call on first use.
//
// Errors about input or state are typed (InvalidSpecError, UnknownModelError,
// FieldConflictError, ...), each with a SQLState method and, where useful,
// Detail and Hint; PostgreSQL's own errors arrive as *pgconn.PgError.
//
// The engine logs each applied change and each retry to Options.Logger, in
// the seed engine's shape ("ALTER TABLE ADD COLUMN" with org, table,
// fields, duration_ms, attempt, trace_id), and makes OpenTelemetry spans: one
// per operation, one per attempt and one per statement, with the stable
// database semantic conventions.
package engine
