package engine

import (
	"slices"
	"testing"
)

func TestVerifyFindsDriftMadeByHand(t *testing.T) {
	db := newInvoiceDB(t, testOptions())
	ctx := testCtx(t)
	db.apply(t, "acme", &CreateModel{Model: "customer", Fields: []FieldSpec{{Name: "id", Type: Int}, {Name: "email", Type: String}, {Name: "note", Type: Text}}})
	db.apply(t, "acme", &CreateModel{Model: "gone", Fields: []FieldSpec{{Name: "id", Type: Int}}})
	if drifts, err := db.engine.Verify(ctx, "acme"); err != nil || len(drifts) != 0 {
		t.Fatalf("before any change by hand: %v, %v", drifts, err)
	}
	db.exec(t, `
ALTER TABLE acme.invoice ADD COLUMN extra text;
ALTER TABLE acme.invoice DROP COLUMN name;
ALTER TABLE acme.customer ALTER COLUMN email TYPE text;
ALTER TABLE acme.customer ADD CONSTRAINT customer_email_key UNIQUE (email);
ALTER TABLE acme.customer ALTER COLUMN note SET DEFAULT 'x';
DROP TABLE acme.gone;
CREATE TABLE acme.stray (id int);`)
	drifts, err := db.engine.Verify(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	got := map[[3]string]bool{}
	for _, d := range drifts {
		got[[3]string{d.Model, d.Field, d.Kind}] = true
	}
	want := [][3]string{
		{"invoice", "extra", MissingInMetadata},
		{"invoice", "name", MissingInDatabase},
		{"customer", "note", "default"},
		{"customer", "email", "type"},
		{"customer", "email", "unique"},
		{"gone", "", MissingInDatabase},
		{"stray", "", MissingInMetadata},
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("drift %v not reported; got %+v", w, drifts)
		}
	}
	if len(drifts) != len(want) {
		t.Errorf("%d drifts, want %d: %+v", len(drifts), len(want), drifts)
	}
	i := slices.IndexFunc(drifts, func(d Drift) bool { return d.Kind == "type" })
	if i < 0 || drifts[i].Detail != "type: live text, asked character varying(100)" {
		t.Errorf("type drift detail: %+v", drifts)
	}
}

// TestVerifyFindsUnfinishedChanges leaves by hand what an interrupted
// change on a table with rows leaves: invalid indexes of a failed
// CREATE UNIQUE INDEX CONCURRENTLY, a unique index the engine's way named
// but not attached to its constraint, a foreign key and a check
// constraint NOT VALID. Verify reports each, and nothing once they are
// finished by hand.
func TestVerifyFindsUnfinishedChanges(t *testing.T) {
	db := newInvoiceDB(t, testOptions())
	ctx := testCtx(t)
	db.apply(t, "acme", &CreateModel{Model: "customer", Fields: []FieldSpec{
		{Name: "id", Type: Int}, {Name: "email", Type: String}, {Name: "note", Type: Text}, {Name: "code", Type: String, Unique: true},
	}})
	db.apply(t, "acme", &AddField{Model: "invoice", Field: FieldSpec{Name: "customer_id", Type: Int, References: &Reference{Table: "customer", Column: "id"}}})
	db.apply(t, "acme", &AddField{Model: "invoice", Field: FieldSpec{Name: "parent_name", Type: String}})
	db.exec(t, `INSERT INTO acme.customer (id, email, note, code) VALUES (1, 'a@example.com', 'n', 'a'), (2, 'a@example.com', 'n', 'b')`)
	if drifts, err := db.engine.Verify(ctx, "acme"); err != nil || len(drifts) != 0 {
		t.Fatalf("before any change by hand: %v, %v", drifts, err)
	}
	// Each CREATE INDEX CONCURRENTLY runs alone: it cannot run in a
	// transaction, which several statements of one query make.
	for _, sql := range []string{
		`CREATE UNIQUE INDEX CONCURRENTLY customer_email_key ON acme.customer (email)`,
		`CREATE UNIQUE INDEX CONCURRENTLY customer_email_note_idx ON acme.customer (email, note)`,
	} {
		if err := cluster.Exec(ctx, db.name, sql); err == nil {
			t.Fatalf("%s: succeeded on duplicate values", sql)
		}
	}
	db.exec(t, `CREATE UNIQUE INDEX CONCURRENTLY invoice_name_key ON acme.invoice (name)`)
	db.exec(t, `CREATE UNIQUE INDEX CONCURRENTLY invoice_name_idx ON acme.invoice (name)`)
	db.exec(t, `
ALTER TABLE acme.invoice DROP CONSTRAINT invoice_customer_id_fkey;
ALTER TABLE acme.invoice ADD CONSTRAINT invoice_customer_id_fkey FOREIGN KEY (customer_id) REFERENCES acme.customer (id) ON DELETE RESTRICT NOT VALID;
ALTER TABLE acme.customer ADD CONSTRAINT customer_note_check CHECK (note <> '') NOT VALID;
ALTER TABLE acme.invoice ADD CONSTRAINT invoice_parent_name_fkey FOREIGN KEY (parent_name) REFERENCES acme.invoice (name);`)
	drifts, err := db.engine.Verify(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	// invoice_name_idx is not named as the engine names a unique
	// constraint's index: it is no drift. The foreign key that references
	// invoice_name_key uses it, but does not attach it.
	want := []Drift{
		{Model: "invoice", Field: "parent_name", Kind: "references", Detail: `references: live "acme"."invoice" ("name") ON DELETE NO ACTION, asked none`},
		{Model: "customer", Field: "email", Kind: InvalidIndex, Detail: `index "acme"."customer_email_key" is invalid`},
		{Model: "customer", Field: "", Kind: InvalidIndex, Detail: `index "acme"."customer_email_note_idx" is invalid`},
		{Model: "invoice", Field: "name", Kind: UnattachedIndex, Detail: `unique index "acme"."invoice_name_key" is not attached to a constraint`},
		{Model: "customer", Field: "note", Kind: NotValidConstraint, Detail: `check constraint "customer_note_check" is NOT VALID`},
		{Model: "invoice", Field: "customer_id", Kind: NotValidConstraint, Detail: `foreign key "invoice_customer_id_fkey" is NOT VALID`},
	}
	if !slices.Equal(drifts, want) {
		t.Errorf("drifts:\n got %+v\nwant %+v", drifts, want)
	}

	// Finishing each by hand as the engine would leaves no drift; the
	// unique constraint on invoice.name is now one the metadata lacks.
	db.exec(t, `DROP INDEX CONCURRENTLY acme.customer_email_key`)
	db.exec(t, `DROP INDEX CONCURRENTLY acme.customer_email_note_idx`)
	db.exec(t, `
ALTER TABLE acme.invoice DROP CONSTRAINT invoice_parent_name_fkey;
ALTER TABLE acme.invoice ADD CONSTRAINT invoice_name_key UNIQUE USING INDEX invoice_name_key;
ALTER TABLE acme.invoice VALIDATE CONSTRAINT invoice_customer_id_fkey;
ALTER TABLE acme.customer VALIDATE CONSTRAINT customer_note_check;`)
	drifts, err = db.engine.Verify(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	want = []Drift{{Model: "invoice", Field: "name", Kind: "unique", Detail: "unique: live true, asked false"}}
	if !slices.Equal(drifts, want) {
		t.Errorf("drifts once finished:\n got %+v\nwant %+v", drifts, want)
	}
}
