package engine

import (
	"crypto/rand"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/pgmigrate/pgmigrate-proxy/internal/pgtest"
)

// TestLostCommitResolvedByHistory checks how a COMMIT whose answer was lost
// is resolved: the operation committed exactly when its history row
// exists.
func TestLostCommitResolvedByHistory(t *testing.T) {
	db := newInvoiceDB(t, testOptions())
	ctx := testCtx(t)
	var applied, lost pgtype.UUID
	for _, id := range []*pgtype.UUID{&applied, &lost} {
		rand.Read(id.Bytes[:])
		id.Valid = true
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO pgmigrate.history (op_id, org, operation, statements, attempts, duration_ms)
VALUES ($1, 'acme', 'add_field', '{}', 1, 0)`, applied)
	if err != nil {
		t.Fatal(err)
	}
	live, err := db.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Release()
	gone, err := pgx.Connect(ctx, cluster.DSN(pgtest.Superuser, db.name))
	if err != nil {
		t.Fatal(err)
	}
	gone.Close(ctx)
	// On the attempt's connection, or a fresh one when it is gone.
	for _, conn := range []*pgx.Conn{live.Conn(), gone} {
		if !db.engine.committed(ctx, conn, applied) {
			t.Error("an operation with a history row was not seen as committed")
		}
		if db.engine.committed(ctx, conn, lost) {
			t.Error("an operation without a history row was seen as committed")
		}
	}
}
