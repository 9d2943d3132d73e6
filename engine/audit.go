package engine

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// RawDDL is the history operation of a statement a tenant session sent
// itself, recorded by Audit.
const RawDDL = "raw_ddl"

// Audit records in org's history a DDL statement that a tenant session sent
// to PostgreSQL itself, as the actor of ctx asked (WithActor): operation
// raw_ddl, the statement as sent, whether or not PostgreSQL accepted it.
func (e *Engine) Audit(ctx context.Context, org, statement string) error {
	if err := e.ensureCatalog(ctx); err != nil {
		return err
	}
	// Not behind the org's command: the record goes in as the statement
	// goes upstream, however long a migration of the org runs. One op id
	// for every try: a try after a commit whose answer was lost adds no
	// second record.
	opID := newOpID()
	return e.poolTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		return insertHistory(ctx, tx, opID, org, "", "", RawDDL, []string{statement}, 0, 0)
	})
}
