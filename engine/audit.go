package engine

import (
	"context"
	crand "crypto/rand"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// RawDDL is the history operation of a statement a tenant session sent
// itself, recorded by Audit.
const RawDDL = "raw_ddl"

// Audit records in org's history a DDL statement that a tenant session sent
// to PostgreSQL itself, as the actor of ctx asked (WithActor): operation
// raw_ddl, the statement as sent, whether or not PostgreSQL accepted it.
func (e *Engine) Audit(ctx context.Context, org, statement string) error {
	var opID pgtype.UUID
	crand.Read(opID.Bytes[:])
	opID.Valid = true
	a := actorOf(ctx)
	if err := e.ensureCatalog(ctx); err != nil {
		return err
	}
	// Not behind the org's command: the record goes in as the statement
	// goes upstream, however long a migration of the org runs.
	return e.poolTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO pgmigrate.history (op_id, org, operation, statements, attempts, duration_ms, applied_by, application)
VALUES ($1, $2, $3, ARRAY[$4], 0, 0, COALESCE(NULLIF($5, ''), current_user), NULLIF($6, ''))`,
			opID, org, RawDDL, statement, a.user, a.application)
		return err
	})
}
