package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"go.opentelemetry.io/otel/trace"
)

// intent is an operation in flight, as its row of pgmigrate.intents
// records it while its plan has phases that commit one by one: what it
// is (op id, org, the operation and its input), the plan, the phases
// committed, and the statements that undo them. Whoever next takes the
// tenant's lock, if the operation stopped half-way, finds the row and
// finishes the operation or undoes it (see recoverOrg). A plan of one
// transaction needs no row: it commits whole or not at all.
type intent struct {
	id  pgtype.UUID
	org string
	// op is the operation, nil for one this engine cannot read (which
	// recovery undoes); kind, model and field name it all the same.
	op                 Operation
	kind, model, field string
	actor              actor
	started            time.Time
	// undo reverses what the operation's committed phases did, in the
	// order it runs: the newest phase's statements first.
	undo []string
	// journaled is true once the row exists.
	journaled bool
	// undoing is true once the operation has failed for good and its
	// phases are being undone.
	undoing bool
}

// execer is what writing the journal needs: a connection or transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// journalPhase is a phase as the intent's plan records it.
type journalPhase struct {
	Statements []string `json:"statements"`
	Online     bool     `json:"online,omitempty"`
}

// journal writes in's row: phase phases of p committed, undo reversing
// them.
func (in *intent) journal(ctx context.Context, q execer, p *Plan, phase int, undo []string) error {
	spec, err := json.Marshal(in.op)
	if err != nil {
		return err
	}
	plan := make([]journalPhase, len(p.Phases))
	for i, ph := range p.Phases {
		plan[i] = journalPhase{Statements: ph.Statements, Online: ph.Online}
	}
	planJSON, err := json.Marshal(plan)
	if err != nil {
		return err
	}
	if undo == nil {
		undo = []string{}
	}
	_, err = q.Exec(ctx, `INSERT INTO pgmigrate.intents
	(op_id, org, operation, model, field, spec, plan, phase, undo, undoing, applied_by, application, started_at)
VALUES ($1, $2, $3, NULLIF($4, ''), NULLIF($5, ''), $6, $7, $8, $9, $10, NULLIF($11, ''), NULLIF($12, ''), $13)
ON CONFLICT (op_id) DO UPDATE SET plan = EXCLUDED.plan, phase = EXCLUDED.phase, undo = EXCLUDED.undo,
	undoing = EXCLUDED.undoing, updated_at = clock_timestamp()`,
		in.id, in.org, in.kind, in.model, in.field, spec, planJSON, phase, undo, in.undoing, in.actor.user, in.actor.application, in.started)
	return err
}

// close deletes in's row.
func (in *intent) close(ctx context.Context, q execer) error {
	_, err := q.Exec(ctx, "DELETE FROM pgmigrate.intents WHERE op_id = $1", in.id)
	return err
}

// reached reads the number of phases in's row says committed, on conn or
// a fresh connection if conn is gone; -1 if it cannot be read.
func (e *Engine) reached(ctx context.Context, conn *pgx.Conn, in *intent) int {
	ctx = context.WithoutCancel(ctx)
	phase := -1
	err := e.onLiveConn(ctx, conn, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, "SELECT phase FROM pgmigrate.intents WHERE op_id = $1", in.id).Scan(&phase)
	})
	if err != nil {
		return -1
	}
	return phase
}

// loadIntents reads the org's unfinished intents, oldest first, but the
// one of id (the caller's own).
func loadIntents(ctx context.Context, q querier, org string, id pgtype.UUID) ([]*intent, error) {
	rows, err := q.Query(ctx, `SELECT op_id, operation, COALESCE(model, ''), COALESCE(field, ''), spec, undo, undoing,
	COALESCE(applied_by, ''), COALESCE(application, ''), started_at
FROM pgmigrate.intents WHERE org = $1 AND op_id IS DISTINCT FROM $2 ORDER BY started_at, op_id`, org, id)
	if err != nil {
		return nil, err
	}
	var out []*intent
	for rows.Next() {
		in := &intent{org: org, journaled: true}
		var spec []byte
		if err := rows.Scan(&in.id, &in.kind, &in.model, &in.field, &spec, &in.undo, &in.undoing,
			&in.actor.user, &in.actor.application, &in.started); err != nil {
			rows.Close()
			return nil, err
		}
		in.op = decodeOperation(in.kind, spec)
		out = append(out, in)
	}
	return out, rows.Err()
}

// operations make the empty operation of each kind, to decode an
// intent's spec into.
var operations = map[string]func() Operation{
	"create_model":  func() Operation { return new(CreateModel) },
	"add_field":     func() Operation { return new(AddField) },
	"alter_field":   func() Operation { return new(AlterField) },
	"drop_field":    func() Operation { return new(DropField) },
	"rename_field":  func() Operation { return new(RenameField) },
	"drop_model":    func() Operation { return new(DropModel) },
	"adopt_model":   func() Operation { return new(AdoptModel) },
	"create_tenant": func() Operation { return new(CreateTenant) },
	"drop_tenant":   func() Operation { return new(DropTenant) },
}

// decodeOperation makes the operation of kind from its spec, nil if this
// engine cannot read it.
func decodeOperation(kind string, spec []byte) Operation {
	mk, ok := operations[kind]
	if !ok {
		return nil
	}
	op := mk()
	if json.Unmarshal(spec, op) != nil {
		return nil
	}
	return op
}

// recoverOrg finishes or undoes each unfinished intent of org but the one
// of skip, under the tenant's lock (held by the transaction lock) and on
// conn: an intent whose operation was still running is completed, by
// planning its operation again from the live state, which finishes
// whatever phase it stopped in (see AddField and AlterField); one whose
// operation had failed and was being undone, or that cannot be completed
// (its plan now fails for a reason that is not transient, such as a
// conflict with a change made meanwhile), is undone with the statements
// it recorded. A transient failure is returned, and the intent is left for
// the next try.
func (e *Engine) recoverOrg(ctx context.Context, lock, conn *pgx.Conn, org string, skip pgtype.UUID) error {
	intents, err := loadIntents(ctx, conn, org, skip)
	if err != nil {
		return err
	}
	for _, in := range intents {
		if err := e.recoverIntent(ctx, lock, conn, in); err != nil {
			return err
		}
	}
	return nil
}

// recoverIntent completes or undoes in (see recoverOrg). An operation this
// engine cannot read, or that is no longer valid, cannot be completed.
func (e *Engine) recoverIntent(ctx context.Context, lock, conn *pgx.Conn, in *intent) error {
	ctx = WithActor(ctx, in.actor.user, in.actor.application)
	if in.op == nil || in.op.Validate(&e.opts) != nil {
		in.undoing = true
	}
	outcome := RecoveryUndone
	if in.undoing {
		if err := e.abandon(ctx, conn, in); err != nil {
			return err
		}
	} else {
		r := Result{Org: in.org, Model: in.model, Field: in.field, Attempts: 1}
		err := e.run(ctx, trace.SpanFromContext(ctx), lock, conn, in, &r, func(err error) bool { return !retryable(err) })
		switch {
		case err == nil:
			outcome = RecoveryCompleted
		case retryable(err) || in.journaled:
			// Transient, or undoing it failed: the next try goes on.
			return err
		}
	}
	e.opts.Recorder.Recovered(outcome)
	e.log.Warn("recovered "+in.kind, keyOrg, in.org, keyTable, in.model, "field", in.field, "outcome", outcome,
		"op_id", in.id.String(), "started_at", in.started)
	return nil
}

// abandon undoes what in's committed phases did, newest first, then
// deletes its row. A journaled intent is marked undoing before the first
// statement, and its row keeps the statements still to run after each, so
// that a crash or a failure (which stops the undoing there) leaves recovery
// the rest to undo, never a change to complete, nor a statement to run
// twice. A row that is gone means the change committed after all (its last
// commit's answer was lost), or was closed by another engine: nothing is
// undone then.
func (e *Engine) abandon(ctx context.Context, conn *pgx.Conn, in *intent) error {
	ctx, cancel := e.detached(ctx)
	defer cancel()
	in.undoing = true
	for len(in.undo) > 0 || in.journaled {
		if in.journaled {
			gone, err := e.keepUndo(ctx, conn, in)
			switch {
			case err != nil:
				return err
			case gone:
				e.log.Warn("nothing to undo: the intent is closed", keyOrg, in.org, "op_id", in.id.String())
				in.journaled, in.undo = false, nil
				return nil
			}
		}
		if len(in.undo) == 0 {
			break
		}
		sql := in.undo[0]
		err := e.undoOne(ctx, conn, sql)
		switch code := sqlState(err); {
		case err == nil:
		case code == "42P01" || code == "42809":
			// The table is gone, or the name is now another kind of
			// object's: nothing of the operation's is left to undo.
			e.log.Warn("nothing to undo", keyError, err.Error(), keyStatement, sql)
		default:
			e.log.Error("undo failed", keyError, err.Error(), keyStatement, sql)
			return err
		}
		in.undo = in.undo[1:]
	}
	if !in.journaled {
		return nil
	}
	if err := e.onLiveConn(ctx, conn, func(c *pgx.Conn) error { return in.close(ctx, c) }); err != nil {
		return err
	}
	in.journaled = false
	return nil
}

// keepUndo marks in's row undoing with the statements still to run, and
// reports whether the row is gone.
func (e *Engine) keepUndo(ctx context.Context, conn *pgx.Conn, in *intent) (gone bool, err error) {
	err = e.onLiveConn(ctx, conn, func(c *pgx.Conn) error {
		tag, err := c.Exec(ctx, "UPDATE pgmigrate.intents SET undoing = true, undo = $2, updated_at = clock_timestamp() WHERE op_id = $1",
			in.id, in.undo)
		gone = tag.RowsAffected() == 0
		return err
	})
	return gone, err
}

// RecoverAll finishes or undoes the unfinished intents of every tenant of
// the engine's database whose lock no command holds (see recoverOrg),
// several tenants at once, and
// returns how many intents are left unfinished, which it also reports to
// the Recorder. A tenant whose lock is held is left to its holder, which
// recovers its intents before running anything else.
func (e *Engine) RecoverAll(ctx context.Context) (unfinished int, err error) {
	if err := e.ensureCatalog(ctx); err != nil {
		return 0, err
	}
	var orgs []string
	err = e.poolTx(ctx, readOnly, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT DISTINCT org FROM pgmigrate.intents ORDER BY org")
		if err != nil {
			return err
		}
		orgs, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return 0, err
	}
	// As many tenants at once as Apply attempts may run (see admit).
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, org := range orgs {
		wg.Go(func() {
			if err := e.recoverIdle(ctx, org); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("org %q: %w", org, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	err = e.poolTx(ctx, readOnly, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT count(*) FROM pgmigrate.intents").Scan(&unfinished)
	})
	if err == nil {
		e.opts.Recorder.Unfinished(unfinished)
	}
	return unfinished, errors.Join(append(errs, err)...)
}

// recoverIdle recovers org's intents if no command holds its lock.
func (e *Engine) recoverIdle(ctx context.Context, org string) error {
	return e.locked(ctx, org, false, func(lock, conn *pgx.Conn, _ bool) error {
		return e.recoverOrg(ctx, lock, conn, org, pgtype.UUID{})
	})
}

// Sweep runs RecoverAll now and then every interval until the engine is
// closed, logging what it could not recover.
func (e *Engine) Sweep(every time.Duration) {
	ctx := e.stopped
	for {
		if n, err := e.RecoverAll(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("recovery sweep failed", "unfinished", n, keyError, err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// prepend puts the undo statements of a phase before those of the phases
// before it.
func prepend(phase, undo []string) []string {
	return append(slices.Clone(phase), undo...)
}
