package engine

import (
	"strings"
	"testing"
)

// The tests of this file build by hand, on a table with rows, each state
// that a run of add_field or alter_field stopped between its phases leaves
// (the first statements of the operation's own plan, run one by one), then
// run the same operation again: it must finish the work, not report a
// conflict.

// newConvergeDB is the invoice model with three rows, and a customer model
// for the foreign keys to reference.
func newConvergeDB(t *testing.T) *testDB {
	t.Helper()
	db := newInvoiceDB(t, testOptions())
	db.apply(t, "acme", &CreateModel{Model: "customer", Fields: []FieldSpec{{Name: "id", Type: Int, PrimaryKey: true}}})
	db.exec(t, `INSERT INTO acme.customer (id) VALUES (1), (2);
INSERT INTO acme.invoice (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')`)
	return db
}

// planned returns the statements of op's plan, from a dry run.
func planned(t *testing.T, db *testDB, op Operation) []string {
	t.Helper()
	r, err := db.engine.Plan(testCtx(t), "acme", op)
	if err != nil {
		t.Fatalf("plan %s: %v", op.Kind(), err)
	}
	return r.Statements
}

// runFirst runs the first n statements of op's plan by hand, each in a
// transaction of its own (or none, for CREATE INDEX CONCURRENTLY), as the
// engine's phases run them, and returns the plan's statements.
func runFirst(t *testing.T, db *testDB, op Operation, n int) []string {
	t.Helper()
	statements := planned(t, db, op)
	if len(statements) <= n {
		t.Fatalf("plan of %s has %d statements, want more than %d: %q", op.Kind(), len(statements), n, statements)
	}
	for _, sql := range statements[:n] {
		if _, err := db.pool.Exec(testCtx(t), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	return statements
}

// failIndex leaves the index of a plan's CREATE UNIQUE INDEX CONCURRENTLY
// invalid, as a build that failed does: it runs it on a column holding
// duplicates (UPDATE acme.invoice SET same), then removes them (the row
// whose id is 2, then UPDATE acme.invoice SET distinct).
func failIndex(t *testing.T, db *testDB, cic, same, distinct string) {
	t.Helper()
	db.exec(t, "UPDATE acme.invoice SET "+same)
	if _, err := db.pool.Exec(testCtx(t), cic); sqlState(err) != "23505" {
		t.Fatalf("%s on duplicates: %v, want 23505", cic, err)
	}
	db.exec(t, "DELETE FROM acme.invoice WHERE id = 2")
	db.exec(t, "UPDATE acme.invoice SET "+distinct)
}

// wantConverged re-runs op and checks that it finishes the field: status
// applied, the unique constraint (if unique) and the foreign key to
// refTable (if not "") present and valid, their index valid and attached,
// the metadata holding the field, and nothing for verify to report; a
// further run is unchanged. The re-run's plan must start with a statement
// that contains first, which shows the state it found.
func wantConverged(t *testing.T, db *testDB, op Operation, first string, unique bool, refTable string) {
	t.Helper()
	model, field := op.Target()
	if statements := planned(t, db, op); len(statements) == 0 || !strings.Contains(statements[0], first) {
		t.Errorf("re-run plan %q, want it to start with %s", statements, first)
	}
	r, err := db.engine.Apply(testCtx(t), "acme", op)
	if err != nil {
		t.Fatalf("re-run %s: %v", op.Kind(), err)
	}
	if r.Status != Applied {
		t.Errorf("re-run %s: status %s, want applied", op.Kind(), r.Status)
	}
	cons := constraintsOn(t, db, "acme", model, field)
	if u := constraintOfType(cons, "u"); unique && (u == nil || !u.Validated || u.Name != uniqueName(model, field)) {
		t.Errorf("unique constraint: %+v", cons)
	}
	if unique {
		idx := indexesOn(t, db, "acme", model, field)
		if len(idx) != 1 || !idx[0].Valid || idx[0].Name != uniqueName(model, field) {
			t.Errorf("indexes on %s: %+v, want one valid %s", field, idx, uniqueName(model, field))
		}
		if n := scalar[int](t, db, `SELECT count(*)::int FROM pg_catalog.pg_constraint WHERE conindid = to_regclass($1) AND contype = 'u'`,
			qualified("acme", uniqueName(model, field))); n != 1 {
			t.Errorf("%d constraints use the index, want 1", n)
		}
	}
	if f := constraintOfType(cons, "f"); refTable != "" && (f == nil || !f.Validated || f.RefTable != refTable) {
		t.Errorf("foreign key: %+v", cons)
	}
	m := describe(t, db, "acme", model)
	if f := m.Field(field); f == nil || f.Unique != unique || (f.References != nil) != (refTable != "") {
		t.Errorf("metadata of %s: %+v", field, f)
	}
	drifts, err := db.engine.Verify(testCtx(t), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(drifts) != 0 {
		t.Errorf("verify: %+v", drifts)
	}
	wantUnchanged(t, db, "acme", op)
}

func TestAddFieldUniqueConverges(t *testing.T) {
	op := &AddField{Model: "invoice", Field: FieldSpec{Name: "ref", Type: String, Unique: true}}

	t.Run("column_only", func(t *testing.T) {
		db := newConvergeDB(t)
		runFirst(t, db, op, 1)
		db.exec(t, `UPDATE acme.invoice SET ref = 'r' || id`)
		wantConverged(t, db, op, "CREATE UNIQUE INDEX CONCURRENTLY", true, "")
	})
	t.Run("invalid_index", func(t *testing.T) {
		db := newConvergeDB(t)
		statements := runFirst(t, db, op, 1)
		failIndex(t, db, statements[1], "ref = 'same'", "ref = 'r' || id")
		wantConverged(t, db, op, "DROP INDEX CONCURRENTLY", true, "")
	})
	t.Run("unattached_index", func(t *testing.T) {
		db := newConvergeDB(t)
		runFirst(t, db, op, 2)
		wantConverged(t, db, op, "UNIQUE USING INDEX", true, "")
	})
}

func TestAddFieldReferencesConverges(t *testing.T) {
	op := &AddField{Model: "invoice", Field: FieldSpec{Name: "customer_id", Type: Int, Unique: true,
		References: &Reference{Table: "customer", Column: "id"}}}

	t.Run("column_only", func(t *testing.T) {
		db := newConvergeDB(t)
		runFirst(t, db, op, 1)
		db.exec(t, `UPDATE acme.invoice SET customer_id = id WHERE id < 3`)
		wantConverged(t, db, op, "CREATE UNIQUE INDEX CONCURRENTLY", true, "customer")
	})
	t.Run("not_valid", func(t *testing.T) {
		db := newConvergeDB(t)
		runFirst(t, db, op, 2)
		wantConverged(t, db, op, "CREATE UNIQUE INDEX CONCURRENTLY", true, "customer")
	})
	t.Run("validated_invalid_index", func(t *testing.T) {
		db := newConvergeDB(t)
		statements := runFirst(t, db, op, 3)
		failIndex(t, db, statements[3], "customer_id = 1", "customer_id = NULL WHERE id = 3")
		wantConverged(t, db, op, "DROP INDEX CONCURRENTLY", true, "customer")
	})
}

func TestAlterFieldConverges(t *testing.T) {
	unique := &AlterField{Model: "invoice", Field: FieldSpec{Name: "name", Type: String, Unique: true}}

	t.Run("invalid_index", func(t *testing.T) {
		db := newConvergeDB(t)
		statements := planned(t, db, unique)
		failIndex(t, db, statements[0], "name = 'same'", "name = 'n' || id")
		wantConverged(t, db, unique, "DROP INDEX CONCURRENTLY", true, "")
	})
	t.Run("unattached_index", func(t *testing.T) {
		db := newConvergeDB(t)
		runFirst(t, db, unique, 1)
		wantConverged(t, db, unique, "UNIQUE USING INDEX", true, "")
	})
	t.Run("not_valid", func(t *testing.T) {
		db := newConvergeDB(t)
		db.apply(t, "acme", &AddField{Model: "invoice", Field: FieldSpec{Name: "customer_id", Type: Int}})
		db.exec(t, `UPDATE acme.invoice SET customer_id = 2`)
		op := &AlterField{Model: "invoice", Field: FieldSpec{Name: "customer_id", Type: Int,
			References: &Reference{Table: "customer", Column: "id"}}}
		runFirst(t, db, op, 1)
		wantConverged(t, db, op, "VALIDATE CONSTRAINT", false, "customer")
	})
}
