package engine

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Describe returns the metadata of one model.
func (e *Engine) Describe(ctx context.Context, org, model string) (*Model, error) {
	var m *Model
	err := e.readTx(ctx, org, func(tx pgx.Tx) (err error) {
		m, err = readModel(ctx, tx, org, model)
		return err
	})
	if err == nil && m == nil {
		err = &UnknownModelError{Org: org, Model: model}
	}
	return m, err
}

// ListModels returns the names of the org's models, in order.
func (e *Engine) ListModels(ctx context.Context, org string) ([]string, error) {
	var models []string
	err := e.readTx(ctx, org, func(tx pgx.Tx) (err error) {
		models, err = listModels(ctx, tx, org)
		return err
	})
	return models, err
}

// TenantSummary is what the catalog says of a tenant at a glance.
type TenantSummary struct {
	Models int
	// LastChange is when its last change was applied; zero if none.
	LastChange time.Time
	// Unfinished counts its intents not yet finished or undone.
	Unfinished int
}

// Summary reads org's TenantSummary.
func (e *Engine) Summary(ctx context.Context, org string) (TenantSummary, error) {
	var s TenantSummary
	var last pgtype.Timestamptz
	err := e.readTx(ctx, org, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT
	(SELECT count(*) FROM pgmigrate.models WHERE org = $1),
	(SELECT max(applied_at) FROM pgmigrate.history WHERE org = $1),
	(SELECT count(*) FROM pgmigrate.intents WHERE org = $1)`, org).Scan(&s.Models, &last, &s.Unfinished)
	})
	s.LastChange = last.Time
	return s, err
}

// HasRole reports whether user is a member of role, directly or through
// other roles; a user or role that does not exist is no member.
func (e *Engine) HasRole(ctx context.Context, user, role string) (bool, error) {
	var ok bool
	err := e.poolTx(ctx, readOnly, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT CASE
	WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)
	 AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $2)
	THEN pg_catalog.pg_has_role($1, $2, 'MEMBER') ELSE false END`, user, role).Scan(&ok)
	})
	return ok, err
}

// HistoryEntry is one applied change. AppliedBy and Application are who
// asked for it (WithActor); AppliedBy is the engine's role if no one was
// named.
type HistoryEntry struct {
	ID          int64
	Org         string
	Model       string
	Field       string
	Operation   string
	Statements  []string
	Attempts    int
	Duration    time.Duration
	AppliedBy   string
	Application string
	AppliedAt   time.Time
}

// History returns the org's applied changes, oldest first; a non-empty
// model keeps only that model's.
func (e *Engine) History(ctx context.Context, org, model string) ([]HistoryEntry, error) {
	var entries []HistoryEntry
	err := e.readTx(ctx, org, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
SELECT id, org, COALESCE(model, ''), COALESCE(field, ''), operation, statements, attempts, duration_ms,
       applied_by, COALESCE(application, ''), applied_at
FROM pgmigrate.history
WHERE org = $1 AND ($2 = '' OR model = $2)
ORDER BY id`, org, model)
		if err != nil {
			return err
		}
		entries, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (HistoryEntry, error) {
			var h HistoryEntry
			var ms int64
			err := r.Scan(&h.ID, &h.Org, &h.Model, &h.Field, &h.Operation, &h.Statements, &h.Attempts, &ms,
				&h.AppliedBy, &h.Application, &h.AppliedAt)
			h.Duration = time.Duration(ms) * time.Millisecond
			return h, err
		})
		return err
	})
	return entries, err
}
