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
