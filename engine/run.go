package engine

import (
	"context"
	crand "crypto/rand"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"reflect"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// Plan compiles op for org without changing anything: the result's status
// is planned (or unchanged) and its statements are what Apply would run now.
func (e *Engine) Plan(ctx context.Context, org string, op Operation) (Result, error) {
	return e.do(ctx, org, op, func(ctx context.Context, r *Result, _ time.Time) error {
		conn, err := e.acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		p, s, err := e.plan(ctx, conn.Conn(), org, op)
		if err != nil {
			return err
		}
		r.Statements, r.Login = p.Statements(), p.Login
		r.Status = Planned
		if unchanged(p, s) {
			r.Status = Unchanged
		}
		return nil
	})
}

// Apply runs op for org: validation, the tenant's lock, then the plan's
// transactions, each with SET LOCAL lock_timeout, the metadata and a
// history row committing with the DDL. A plan of several phases is
// journaled (see intent), so that a stop between its phases, of this
// process or of PostgreSQL, is finished or undone by whoever next takes
// the tenant's lock. Transient failures (lock timeout, deadlock,
// serialization failure, lock not available, admin or crash shutdown, a
// server starting up, too many connections, no free connection in the
// pool, lost connection) are retried: the next attempt plans again from
// the live state, so it goes on from the phases that committed. A failure
// that is not retried undoes them.
func (e *Engine) Apply(ctx context.Context, org string, op Operation) (Result, error) {
	return e.do(ctx, org, op, func(ctx context.Context, r *Result, start time.Time) error {
		in := &intent{id: newOpID(), org: org, op: op, kind: op.Kind(), model: r.Model, field: r.Field, actor: actorOf(ctx), started: start}
		return e.retry(ctx, func(attempt int) error {
			r.Attempts = attempt
			return e.attempt(ctx, in, r, func(err error) bool {
				return !retryable(err) || attempt >= e.opts.Retry.MaxAttempts || ctx.Err() != nil
			})
		}, func(attempt int, err error, delay time.Duration) {
			e.opts.Recorder.Retried(sqlState(err))
			e.log.Warn("retrying "+op.Kind(), keyOrg, org, keyTable, r.Model,
				keyAttempt, attempt, keySQLState, sqlState(err), keyDelayMS, delay.Milliseconds(), keyError, err.Error())
		})
	})
}

// retry runs try, attempt 1, 2, ..., until it succeeds, fails with an
// error that is not transient, or the retry budget is spent, sleeping the
// backoff between attempts; retrying, if not nil, hears of each retry.
func (e *Engine) retry(ctx context.Context, try func(attempt int) error, retrying func(attempt int, err error, delay time.Duration)) error {
	for attempt := 1; ; attempt++ {
		err := try(attempt)
		if err == nil || !retryable(err) || attempt >= e.opts.Retry.MaxAttempts {
			return err
		}
		delay := e.backoff(attempt)
		if retrying != nil {
			retrying(attempt, err, delay)
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(delay):
		}
	}
}

// do validates op and, in the operation's span and holding org's slot
// (see forOrg), runs run, filling the result's common fields.
func (e *Engine) do(ctx context.Context, org string, op Operation, run func(context.Context, *Result, time.Time) error) (Result, error) {
	model, field := op.Target()
	r := Result{Org: org, Model: model, Field: field}
	ctx, span := e.tracer.Start(ctx, "migrate."+op.Kind(), trace.WithAttributes(
		attrSystem, semconv.DBOperationName(op.Kind()), semconv.DBCollectionName(model), attribute.String("pgmigrate.org", org)))
	defer span.End()
	start := time.Now()
	err := op.Validate(&e.opts)
	if err == nil {
		err = e.forOrg(ctx, org, func() error { return run(ctx, &r, start) })
	}
	r.Duration = time.Since(start)
	span.SetAttributes(attribute.String("pgmigrate.status", string(r.Status)), attribute.Int("pgmigrate.attempts", r.Attempts))
	if err != nil {
		recordError(span, err)
		return r, err
	}
	return r, nil
}

// plan reads the state and compiles op.
func (e *Engine) plan(ctx context.Context, conn *pgx.Conn, org string, op Operation) (*Plan, *State, error) {
	model, _ := op.Target()
	s, err := e.readState(ctx, conn, org, op)
	if err != nil {
		return nil, nil, err
	}
	if model != "" && !s.SchemaExists {
		return nil, nil, &UnknownTenantError{Org: org}
	}
	trace.SpanFromContext(ctx).SetAttributes(namespace(conn.Config().Database, s.Schema))
	p, err := op.Plan(s)
	return p, s, err
}

// unchanged reports whether p changes neither the database nor the
// metadata.
func unchanged(p *Plan, s *State) bool {
	if len(p.Phases) > 0 || p.AddTenant && !s.Registered || p.DropTenant && s.Registered {
		return false
	}
	if p.DropModel {
		return s.Meta == nil
	}
	return p.Model == nil || reflect.DeepEqual(p.Model, s.Meta)
}

// attempt is one try of Apply, on one connection, while another holds the
// tenant's lock, once the engine admits it. The tenant's unfinished
// intents are recovered first. final says whether a failure ends the
// Apply, which then undoes what committed.
func (e *Engine) attempt(ctx context.Context, in *intent, r *Result, final func(error) bool) (err error) {
	opSpan := trace.SpanFromContext(ctx)
	ctx, span := e.tracer.Start(ctx, "attempt", trace.WithAttributes(attribute.Int("pgmigrate.attempt", r.Attempts)))
	defer func() {
		if err != nil {
			recordError(span, err)
		}
		span.End()
	}()
	return e.locked(ctx, in.org, true, func(lock, conn *pgx.Conn, unfinished bool) error {
		if unfinished {
			if err := e.recoverOrg(ctx, lock, conn, in.org, in.id); err != nil {
				return err
			}
		}
		if r.Attempts > 1 && e.committed(ctx, conn, in.id) {
			// A recovery completed it while this Apply waited to retry.
			r.Status = Applied
			return nil
		}
		return e.run(ctx, opSpan, lock, conn, in, r, final)
	})
}

// locked runs fn, once the engine admits it (see admit), holding org's
// lock (see lockTenant) and a connection of the pool to work on. Without
// wait, a lock that is held is not waited for, and fn does not run.
func (e *Engine) locked(ctx context.Context, org string, wait bool, fn func(lock, conn *pgx.Conn, unfinished bool) error) error {
	release, err := e.admit(ctx)
	if err != nil {
		return err
	}
	defer release()
	lock, unfinished, unlock, err := e.lockTenant(ctx, org, wait)
	if err != nil || lock == nil {
		return err
	}
	defer unlock()
	pc, err := e.acquire(ctx)
	if err != nil {
		return err
	}
	defer pc.Release()
	return fn(lock, pc.Conn(), unfinished)
}

// run plans in's operation from the tenant's live state and runs the plan
// on conn, in the operation's span opSpan, under the tenant's lock (held by the transaction lock):
// journaled if it has several phases or in has a row already, the row
// closed in the transaction of the last phase. A failure for which final
// is true undoes what committed.
func (e *Engine) run(ctx context.Context, opSpan trace.Span, lock, conn *pgx.Conn, in *intent, r *Result, final func(error) bool) error {
	fail := func(err error) error {
		if final(err) {
			if undoErr := e.abandon(ctx, conn, in); undoErr != nil && in.journaled {
				e.log.Error("undo left for recovery", keyOrg, in.org, "op_id", in.id.String(), keyError, undoErr.Error())
			}
		}
		return err
	}
	p, s, err := e.plan(ctx, conn, in.org, in.op)
	if err != nil {
		return fail(err)
	}
	opSpan.SetAttributes(namespace(conn.Config().Database, s.Schema))
	r.Statements, r.Login = p.Statements(), p.Login
	if unchanged(p, s) {
		r.Status = Unchanged
		if in.journaled {
			// What it was doing is in place.
			if err := in.close(ctx, conn); err != nil {
				return err
			}
			in.journaled = false
		}
		return nil
	}
	phases := runPhases(p)
	journal := in.journaled || len(phases) > 1
	if err := e.faultAt(ctx, in.kind, 0); err != nil {
		return err
	}
	for i, ph := range phases {
		last := i == len(phases)-1
		if ph.Online {
			err = e.runOnline(ctx, conn, in, p, i, ph, journal)
		} else {
			err = e.execTx(ctx, conn, ph, func(tx pgx.Tx) error {
				if !last {
					if journal {
						return in.journal(ctx, tx, p, i+1, prepend(ph.Undo, in.undo))
					}
					return nil
				}
				return e.finish(ctx, tx, lock, in, p, s, r, journal || r.Attempts > 1)
			})
			if err == nil || conn.IsClosed() && journal && e.reached(ctx, conn, in) > i {
				// Committed, whether or not its answer came back.
				in.undo = prepend(ph.Undo, in.undo)
				in.journaled = in.journaled || journal
			}
		}
		if err != nil {
			if last && conn.IsClosed() && e.committed(ctx, conn, in.id) {
				break
			}
			return fail(err)
		}
		if !last {
			if err := e.faultAt(ctx, in.kind, i+1); err != nil {
				return err
			}
		}
	}
	in.journaled = false
	r.Status, r.Password = Applied, p.Password
	if len(p.Phases) == 0 {
		// What was in place is adopted: only the catalog changed.
		r.Status = Unchanged
	}
	appliedBy := actorOf(ctx).user
	if appliedBy == "" {
		appliedBy = conn.Config().User
	}
	e.log.Info(logMessage(in.op), keyOrg, in.org, keyTable, in.model, keyFields, fieldNames(p.Model, r.Field),
		keyAttempt, r.Attempts, keyDurationMS, time.Since(in.started).Milliseconds(), keyAppliedBy, appliedBy,
		keyTraceID, opSpan.SpanContext().TraceID().String())
	return nil
}

// runPhases are the phases run for p: its own, and one more for the
// metadata and history if it has none, or its last is online.
func runPhases(p *Plan) []Phase {
	if len(p.Phases) == 0 || p.Phases[len(p.Phases)-1].Online {
		return append(slices.Clone(p.Phases), Phase{})
	}
	return p.Phases
}

// runOnline runs the online phase i of p: its undo is journaled before it
// runs, as a statement stopped half-way may leave something behind (an
// invalid index), and the phase reached right after it, as PostgreSQL
// runs it outside any transaction. If it fails because its name belongs
// to something else (42P07), its undo is forgotten.
func (e *Engine) runOnline(ctx context.Context, conn *pgx.Conn, in *intent, p *Plan, i int, ph Phase, journal bool) error {
	in.undo = prepend(ph.Undo, in.undo)
	if journal {
		if err := in.journal(ctx, conn, p, i, in.undo); err != nil {
			return err
		}
		in.journaled = true
	}
	if err := e.execOnline(ctx, conn, ph); err != nil {
		if sqlState(err) == "42P07" {
			in.undo = in.undo[len(ph.Undo):]
		}
		return err
	}
	if journal {
		return in.journal(ctx, conn, p, i+1, in.undo)
	}
	return nil
}

// finish is the end of the last phase's transaction: the operation's
// recheck, the check that the tenant's lock is still held, the metadata,
// the history row and, if close, the deletion of the intent's row.
func (e *Engine) finish(ctx context.Context, tx pgx.Tx, lock *pgx.Conn, in *intent, p *Plan, s *State, r *Result, close bool) error {
	if c, ok := in.op.(rechecker); ok {
		if err := c.recheck(ctx, tx, s); err != nil {
			return err
		}
	}
	// Commit only while the tenant's lock is still held: had its
	// connection been lost, another command of the org could be running
	// too.
	if _, err := lock.Exec(ctx, "SELECT 1"); err != nil {
		return err
	}
	if err := e.record(ctx, tx, in, p, s, r); err != nil {
		return err
	}
	if close {
		return in.close(ctx, tx)
	}
	return nil
}

// faultAt calls the test hook fault, if set.
func (e *Engine) faultAt(ctx context.Context, kind string, phase int) error {
	if e.fault == nil {
		return nil
	}
	return e.fault(ctx, kind, phase)
}

// lockTenant takes the tenant's lock: the org's row of pgmigrate.locks,
// inserted or updated by a transaction on a connection of its own (lock)
// that stays open until unlock rolls it back. Waiting for it is bounded by
// the lock timeout (55P03, retried), and reported to the Recorder. Tenant
// roles have no access to schema pgmigrate, so unlike an advisory lock
// they can neither take the lock nor hold it. unfinished says whether the
// org has unfinished intents, as seen once the lock is held. Without
// wait, a lock that is held is not waited for (only 10ms), and lock is
// nil.
//
// The transaction's BEGIN, its settings, the lock and the look for
// intents go to the server in one round trip.
func (e *Engine) lockTenant(ctx context.Context, org string, wait bool) (lock *pgx.Conn, unfinished bool, unlock func(), err error) {
	pc, err := e.acquire(ctx)
	if err != nil {
		return nil, false, nil, err
	}
	unlock = func() {
		pc.Conn().Exec(context.WithoutCancel(ctx), "ROLLBACK")
		pc.Release()
	}
	settings := e.settings()
	if !wait {
		settings[slices.IndexFunc(settings, func(s setting) bool { return s.name == "lock_timeout" })].value = "10"
	}
	set, args := setConfig(settings)
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(set, args...)
	b.Queue("INSERT INTO pgmigrate.locks (org) VALUES ($1) ON CONFLICT (org) DO UPDATE SET org = EXCLUDED.org", org)
	b.Queue("SELECT EXISTS (SELECT FROM pgmigrate.intents WHERE org = $1)", org)
	// The transaction idles while the attempt works: a server-wide
	// idle_in_transaction_session_timeout must not end it. This comes
	// last so that the open portal it leaves holds no snapshot, which
	// would keep CREATE INDEX CONCURRENTLY waiting.
	b.Queue("SET LOCAL idle_in_transaction_session_timeout = 0")
	start := time.Now()
	br := pc.Conn().SendBatch(ctx, b)
	_, err = br.Exec()
	if err == nil {
		_, err = br.Exec()
	}
	if err == nil {
		_, err = br.Exec()
		if wait {
			e.opts.Recorder.LockWaited(time.Since(start))
		}
	}
	if err == nil {
		err = br.QueryRow().Scan(&unfinished)
	}
	if err == nil {
		_, err = br.Exec()
	}
	err = errors.Join(err, br.Close())
	if err != nil {
		unlock()
		if !wait && sqlState(err) == "55P03" {
			return nil, false, nil, nil
		}
		return nil, false, nil, err
	}
	return pc.Conn(), unfinished, unlock, nil
}

// record writes the metadata change and the history row.
func (e *Engine) record(ctx context.Context, tx pgx.Tx, in *intent, p *Plan, s *State, r *Result) error {
	org := in.org
	switch {
	case p.DropModel:
		if err := dropModelMeta(ctx, tx, org, r.Model); err != nil {
			return err
		}
	case p.Model != nil:
		if err := writeModel(ctx, tx, org, p.Model); err != nil {
			return err
		}
	}
	if p.AddTenant {
		if _, err := tx.Exec(ctx, "INSERT INTO pgmigrate.tenants (org, schema) VALUES ($1, $2) ON CONFLICT (org) DO NOTHING", org, s.Schema); err != nil {
			return err
		}
	}
	if p.AddTenant || p.DropTenant {
		// Every proxy's registry hears of it at commit.
		if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", TenantsChannel, org); err != nil {
			return err
		}
	}
	if p.DropTenant {
		if _, err := tx.Exec(ctx, "DELETE FROM pgmigrate.models WHERE org = $1", org); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM pgmigrate.tenants WHERE org = $1", org); err != nil {
			return err
		}
	}
	return insertHistory(ctx, tx, in.id, org, r.Model, r.Field, in.kind, p.Statements(), r.Attempts, time.Since(in.started))
}

// newOpID draws the id of an operation's history row.
func newOpID() pgtype.UUID {
	id := pgtype.UUID{Valid: true}
	crand.Read(id.Bytes[:])
	return id
}

// insertHistory writes a history row, applied by the actor of ctx (the
// engine's role when none is set); model and field may be empty. A row of
// that op id written already (by a try whose commit's answer was lost)
// stays as it is.
func insertHistory(ctx context.Context, tx pgx.Tx, opID pgtype.UUID, org, model, field, operation string, statements []string, attempts int, d time.Duration) error {
	a := actorOf(ctx)
	_, err := tx.Exec(ctx, `INSERT INTO pgmigrate.history (op_id, org, model, field, operation, statements, attempts, duration_ms, applied_by, application)
VALUES ($1, $2, NULLIF($3, ''), NULLIF($4, ''), $5, $6, $7, $8, COALESCE(NULLIF($9, ''), current_user), NULLIF($10, ''))
ON CONFLICT (op_id) DO NOTHING`,
		opID, org, model, field, operation, statements, attempts, d.Milliseconds(), a.user, a.application)
	return err
}

// execTx runs a phase in a transaction with the engine's settings, then
// more (the metadata), then commits.
func (e *Engine) execTx(ctx context.Context, conn *pgx.Conn, ph Phase, more func(pgx.Tx) error) error {
	return e.inTx(ctx, conn, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if err := e.execPhase(ctx, tx.Conn(), ph); err != nil {
			return err
		}
		return more(tx)
	})
}

// execOnline runs a statement that cannot run in a transaction block, with
// the engine's settings set for the session around it.
func (e *Engine) execOnline(ctx context.Context, conn *pgx.Conn, ph Phase) error {
	if _, err := conn.Exec(ctx, e.set("SET")); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), e.reset())
	return e.execPhase(ctx, conn, ph)
}

// execPhase runs the statements of a phase, each as it runs but shown as
// the plan shows it.
func (e *Engine) execPhase(ctx context.Context, conn *pgx.Conn, ph Phase) error {
	for i, sql := range ph.Statements {
		if err := e.exec(ctx, conn, sql, ph.run(i)); err != nil {
			return err
		}
	}
	return nil
}

// exec runs one statement in its own span: run, which the span shows as
// shown.
func (e *Engine) exec(ctx context.Context, conn *pgx.Conn, shown, run string) error {
	ctx, span := e.tracer.Start(ctx, statementName(shown), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attrSystem, semconv.DBQueryText(shown), semconv.DBOperationName(statementName(shown))))
	defer span.End()
	_, err := conn.Exec(ctx, run, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		recordError(span, err)
	}
	return err
}

// undoOne runs an undo statement under the engine's settings (see
// onLiveConn).
func (e *Engine) undoOne(ctx context.Context, conn *pgx.Conn, sql string) error {
	return e.onLiveConn(ctx, conn, func(c *pgx.Conn) error {
		return e.execOnline(ctx, c, Phase{Statements: []string{sql}})
	})
}

// onLiveConn runs fn on conn or, if it is gone, on a fresh connection.
func (e *Engine) onLiveConn(ctx context.Context, conn *pgx.Conn, fn func(*pgx.Conn) error) error {
	if conn.IsClosed() {
		pc, err := e.acquire(ctx)
		if err != nil {
			return err
		}
		defer pc.Release()
		conn = pc.Conn()
	}
	return fn(conn)
}

// committed resolves a COMMIT whose answer was lost with the connection,
// or an Apply a recovery may have completed: the history row of opID
// exists if and only if it committed. It asks on conn, or a fresh
// connection if conn is gone.
func (e *Engine) committed(ctx context.Context, conn *pgx.Conn, opID pgtype.UUID) bool {
	ctx = context.WithoutCancel(ctx)
	var ok bool
	err := e.onLiveConn(ctx, conn, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pgmigrate.history WHERE op_id = $1)", opID).Scan(&ok)
	})
	return err == nil && ok
}

// retryableStates are the SQLSTATEs worth another attempt: lock not
// available, deadlock, serialization failure, object in use, admin or
// crash shutdown, a server still starting up, too many connections
// (PostgreSQL's, or no free connection in the engine's pool).
var retryableStates = []string{"55P03", "40P01", "40001", "55006", "57P01", "57P02", "57P03", "53300"}

// retryable reports whether err is transient: one of retryableStates, from
// PostgreSQL or the engine, or a lost connection.
func retryable(err error) bool {
	if code := sqlState(err); code != "" {
		return slices.Contains(retryableStates, code)
	}
	var netErr net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &netErr) || pgconn.SafeToRetry(err)
}

// backoff is the delay before the attempt after attempt n.
func (e *Engine) backoff(n int) time.Duration {
	d := e.opts.Retry.Delay << (n - 1)
	if e.opts.Retry.MaxDelay > 0 && (d > e.opts.Retry.MaxDelay || d <= 0) {
		d = e.opts.Retry.MaxDelay
	}
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}
