package engine

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Describe returns the metadata of one model.
func (e *Engine) Describe(ctx context.Context, org, model string) (*Model, error) {
	if err := e.ensureCatalog(ctx); err != nil {
		return nil, err
	}
	m, err := readModel(ctx, e.pool, org, model)
	if err == nil && m == nil {
		err = &UnknownModelError{Org: org, Model: model}
	}
	return m, err
}

// ListModels returns the names of the org's models, in order.
func (e *Engine) ListModels(ctx context.Context, org string) ([]string, error) {
	if err := e.ensureCatalog(ctx); err != nil {
		return nil, err
	}
	return listModels(ctx, e.pool, org)
}

// HasRole reports whether user is a member of role, directly or through
// other roles; a user or role that does not exist is no member.
func (e *Engine) HasRole(ctx context.Context, user, role string) (bool, error) {
	var ok bool
	err := e.pool.QueryRow(ctx, `SELECT CASE
	WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)
	 AND EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $2)
	THEN pg_catalog.pg_has_role($1, $2, 'MEMBER') ELSE false END`, user, role).Scan(&ok)
	return ok, err
}

// HistoryEntry is one applied change.
type HistoryEntry struct {
	ID         int64
	Org        string
	Model      string
	Field      string
	Operation  string
	Statements []string
	Attempts   int
	Duration   time.Duration
	AppliedBy  string
	AppliedAt  time.Time
}

// History returns the org's applied changes, oldest first; a non-empty
// model keeps only that model's.
func (e *Engine) History(ctx context.Context, org, model string) ([]HistoryEntry, error) {
	if err := e.ensureCatalog(ctx); err != nil {
		return nil, err
	}
	rows, err := e.pool.Query(ctx, `
SELECT id, org, COALESCE(model, ''), COALESCE(field, ''), operation, statements, attempts, duration_ms, applied_by, applied_at
FROM pgmigrate.history
WHERE org = $1 AND ($2 = '' OR model = $2)
ORDER BY id`, org, model)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (HistoryEntry, error) {
		var h HistoryEntry
		var ms int64
		err := r.Scan(&h.ID, &h.Org, &h.Model, &h.Field, &h.Operation, &h.Statements, &h.Attempts, &ms, &h.AppliedBy, &h.AppliedAt)
		h.Duration = time.Duration(ms) * time.Millisecond
		return h, err
	})
}
