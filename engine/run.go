package engine

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
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
		conn, err := e.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		p, s, err := e.plan(ctx, conn.Conn(), org, op)
		if err != nil {
			return err
		}
		r.Statements = p.Statements()
		r.Status = Planned
		if unchanged(p, s) {
			r.Status = Unchanged
		}
		return nil
	})
}

// Apply runs op for org: validation, the tenant's advisory lock, then the
// plan's transactions, each with SET LOCAL lock_timeout, the metadata and a
// history row committing with the DDL. Transient failures (lock timeout,
// deadlock, serialization failure, lock not available, admin shutdown, too
// many connections, lost connection) are retried from the start, after
// undoing any phase that had committed.
func (e *Engine) Apply(ctx context.Context, org string, op Operation) (Result, error) {
	return e.do(ctx, org, op, func(ctx context.Context, r *Result, start time.Time) error {
		var opID pgtype.UUID
		crand.Read(opID.Bytes[:])
		opID.Valid = true
		for attempt := 1; ; attempt++ {
			r.Attempts = attempt
			err := e.attempt(ctx, org, op, opID, r, start)
			if err == nil || !retryable(err) || attempt >= e.opts.Retry.MaxAttempts {
				return err
			}
			delay := e.backoff(attempt)
			e.log.Warn("retrying "+op.Kind(), keyOrg, org, keyTable, r.Model,
				keyAttempt, attempt, keySQLState, sqlState(err), keyDelayMS, delay.Milliseconds(), keyError, err.Error())
			select {
			case <-ctx.Done():
				return errors.Join(err, ctx.Err())
			case <-time.After(delay):
			}
		}
	})
}

// do validates op, makes sure the catalog exists, and wraps run in the
// operation's span, filling the result's common fields.
func (e *Engine) do(ctx context.Context, org string, op Operation, run func(context.Context, *Result, time.Time) error) (Result, error) {
	model, field := op.Target()
	r := Result{Org: org, Model: model, Field: field}
	ctx, span := e.tracer.Start(ctx, "migrate."+op.Kind(), trace.WithAttributes(
		attrSystem, semconv.DBOperationName(op.Kind()), semconv.DBCollectionName(model), attribute.String("pgmigrate.org", org)))
	defer span.End()
	start := time.Now()
	err := op.Validate(&e.opts)
	if err == nil {
		err = e.ensureCatalog(ctx)
	}
	if err == nil {
		err = run(ctx, &r, start)
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
	s, err := e.readState(ctx, conn, org, model)
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

// attempt is one try of Apply, on one connection holding the tenant's
// advisory lock.
func (e *Engine) attempt(ctx context.Context, org string, op Operation, opID pgtype.UUID, r *Result, start time.Time) (err error) {
	opSpan := trace.SpanFromContext(ctx)
	ctx, span := e.tracer.Start(ctx, "attempt", trace.WithAttributes(attribute.Int("pgmigrate.attempt", r.Attempts)))
	defer func() {
		if err != nil {
			recordError(span, err)
		}
		span.End()
	}()
	pc, err := e.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer pc.Release()
	conn := pc.Conn()
	lockKey := "pgmigrate:tenant:" + org
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtextextended($1, 0))", lockKey); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtextextended($1, 0))", lockKey)

	p, s, err := e.plan(ctx, conn, org, op)
	if err != nil {
		return err
	}
	opSpan.SetAttributes(namespace(conn.Config().Database, s.Schema))
	r.Statements = p.Statements()
	if unchanged(p, s) {
		r.Status = Unchanged
		return nil
	}
	phases := p.Phases
	if len(phases) == 0 || phases[len(phases)-1].Online {
		phases = append(slices.Clone(phases), Phase{})
	}
	for i, ph := range phases {
		last := i == len(phases)-1
		if ph.Online {
			err = e.execOnline(ctx, conn, ph)
		} else {
			err = e.execTx(ctx, conn, ph, func(tx pgx.Tx) error {
				if !last {
					return nil
				}
				return e.record(ctx, tx, org, op, opID, p, s, r, start)
			})
		}
		if err == nil {
			continue
		}
		if last && conn.IsClosed() && e.committed(ctx, opID) {
			break
		}
		// A failed transaction rolled itself back; a failed online
		// statement may leave something behind (an invalid index), unless
		// it failed because the name belongs to something else.
		undone := i
		if ph.Online && sqlState(err) != "42P07" {
			undone++
		}
		e.undo(ctx, conn, phases[:undone])
		return err
	}
	r.Status = Applied
	e.log.Info(logMessage(op), keyOrg, org, keyTable, r.Model, keyFields, fieldNames(p.Model, r.Field),
		keyAttempt, r.Attempts, keyDurationMS, time.Since(start).Milliseconds(), keyTraceID, span.SpanContext().TraceID().String())
	return nil
}

// record writes the metadata change and the history row.
func (e *Engine) record(ctx context.Context, tx pgx.Tx, org string, op Operation, opID pgtype.UUID, p *Plan, s *State, r *Result, start time.Time) error {
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
	if p.DropTenant {
		if _, err := tx.Exec(ctx, "DELETE FROM pgmigrate.models WHERE org = $1", org); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM pgmigrate.tenants WHERE org = $1", org); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO pgmigrate.history (op_id, org, model, field, operation, statements, attempts, duration_ms)
VALUES ($1, $2, NULLIF($3, ''), NULLIF($4, ''), $5, $6, $7, $8)`,
		opID, org, r.Model, r.Field, op.Kind(), p.Statements(), r.Attempts, time.Since(start).Milliseconds())
	return err
}

// execTx runs a phase in a transaction with the engine's timeouts, then
// more (the metadata), then commits.
func (e *Engine) execTx(ctx context.Context, conn *pgx.Conn, ph Phase, more func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := e.setTimeouts(ctx, tx); err != nil {
			return err
		}
		for _, sql := range ph.Statements {
			if err := e.exec(ctx, tx.Conn(), sql); err != nil {
				return err
			}
		}
		return more(tx)
	})
}

func (e *Engine) setTimeouts(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "SET LOCAL standard_conforming_strings = on"); err != nil {
		return err
	}
	if err := setLocal(ctx, tx, "lock_timeout", e.opts.LockTimeout); err != nil {
		return err
	}
	return setLocal(ctx, tx, "statement_timeout", e.opts.StatementTimeout)
}

// execOnline runs a statement that cannot run in a transaction block, with
// the lock timeout set for the session around it.
func (e *Engine) execOnline(ctx context.Context, conn *pgx.Conn, ph Phase) error {
	set := fmt.Sprintf("SET lock_timeout = %d; SET statement_timeout = %d; SET standard_conforming_strings = on",
		e.opts.LockTimeout.Milliseconds(), e.opts.StatementTimeout.Milliseconds())
	if _, err := conn.Exec(ctx, set); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "RESET lock_timeout; RESET statement_timeout")
	for _, sql := range ph.Statements {
		if err := e.exec(ctx, conn, sql); err != nil {
			return err
		}
	}
	return nil
}

// exec runs one statement in its own span.
func (e *Engine) exec(ctx context.Context, conn *pgx.Conn, sql string) error {
	ctx, span := e.tracer.Start(ctx, statementName(sql), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attrSystem, semconv.DBQueryText(sql), semconv.DBOperationName(statementName(sql))))
	defer span.End()
	_, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		recordError(span, err)
	}
	return err
}

// undo reverses committed phases, newest first. It runs on a fresh
// connection if the attempt's one is gone; failures are logged, as the
// original error is what the caller needs.
func (e *Engine) undo(ctx context.Context, conn *pgx.Conn, done []Phase) {
	ctx = context.WithoutCancel(ctx)
	for i := len(done) - 1; i >= 0; i-- {
		for _, sql := range done[i].Undo {
			var err error
			if conn.IsClosed() {
				_, err = e.pool.Exec(ctx, sql)
			} else {
				err = e.exec(ctx, conn, sql)
			}
			if err != nil {
				e.log.Error("undo failed", keyError, err.Error(), keyStatement, sql)
			}
		}
	}
}

// committed resolves a COMMIT whose answer was lost with the connection:
// the history row of opID exists if and only if it committed.
func (e *Engine) committed(ctx context.Context, opID pgtype.UUID) bool {
	var ok bool
	err := e.pool.QueryRow(context.WithoutCancel(ctx), "SELECT EXISTS (SELECT 1 FROM pgmigrate.history WHERE op_id = $1)", opID).Scan(&ok)
	return err == nil && ok
}

// retryableStates are the SQLSTATEs worth another attempt: lock not
// available, deadlock, serialization failure, object in use, admin
// shutdown, too many connections.
var retryableStates = []string{"55P03", "40P01", "40001", "55006", "57P01", "53300"}

// retryable reports whether err is transient: one of retryableStates or a
// lost connection.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return slices.Contains(retryableStates, pgErr.Code)
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
