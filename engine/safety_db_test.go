package engine

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// hostile is a default that would break SQL built by pasting: quotes,
// statement separators, comments, backslashes, dollar quotes and
// characters beyond ASCII.
const hostile = "it's'' \"x\"; DROP TABLE acme.invoice; -- c /* c */ \\ \\' \\\\ E'\\n' $$ $q$ \t ü 日本 🚀 \u200b%s"

func TestHostileDefaultStoredExactly(t *testing.T) {
	db := newInvoiceDB(t, testOptions())
	doc := map[string]any{"k": hostile, "a": []any{"x'y", `\"`, 1.5}}
	fields := []FieldSpec{
		{Name: "note", Type: Text, Default: jsonValue(t, hostile)},
		{Name: "label", Type: String, MaxLength: 200, Default: jsonValue(t, hostile)},
		{Name: "doc", Type: Json, Default: jsonValue(t, doc)},
	}
	for _, f := range fields {
		db.apply(t, "acme", &AddField{Model: "invoice", Field: f})
	}
	db.apply(t, "acme", &CreateModel{Model: "memo", Fields: []FieldSpec{{Name: "id", Type: Int, PrimaryKey: true}, fields[0]}})
	db.exec(t, "INSERT INTO acme.invoice (id) VALUES (1); INSERT INTO acme.memo (id) VALUES (1)")

	for _, table := range []string{"invoice", "memo"} {
		checkAgree(t, db, "acme", "acme", table)
		if got := scalar[string](t, db, "SELECT note FROM acme."+table); got != hostile {
			t.Errorf("%s.note default came back as %q, want %q", table, got, hostile)
		}
	}
	if got := scalar[string](t, db, "SELECT label FROM acme.invoice"); got != hostile {
		t.Errorf("label default came back as %q", got)
	}
	var gotDoc map[string]any
	if err := json.Unmarshal([]byte(scalar[string](t, db, "SELECT doc::text FROM acme.invoice")), &gotDoc); err != nil || !reflect.DeepEqual(gotDoc, doc) {
		t.Errorf("doc default came back as %v (%v), want %v", gotDoc, err, doc)
	}
	var meta string
	if err := json.Unmarshal(describe(t, db, "acme", "invoice").Field("note").Default, &meta); err != nil || meta != hostile {
		t.Errorf("metadata default %q (%v)", meta, err)
	}
	if n := tableCount(t, db, "acme"); n != 2 {
		t.Errorf("%d tables in acme, want 2", n)
	}
	for _, f := range fields {
		wantUnchanged(t, db, "acme", &AddField{Model: "invoice", Field: f})
	}
}

func TestInvalidInputRejectedBeforeAnySQL(t *testing.T) {
	db := newInvoiceDB(t, testOptions())
	badNames := []string{
		"", "1abc", "a b", "a;b", "a-b", `x"y`, "x'y", "tab\tname", "ünï", "select", "xmin",
		"Robert'); DROP TABLE acme.invoice; --", strings.Repeat("a", 64),
	}
	var ops []Operation
	for _, bad := range badNames {
		ops = append(ops,
			&CreateModel{Model: bad, Fields: []FieldSpec{{Name: "id", Type: Int, PrimaryKey: true}}},
			&CreateModel{Model: "other", Fields: []FieldSpec{{Name: bad, Type: Text}}},
			&AddField{Model: "invoice", Field: FieldSpec{Name: bad, Type: Text}},
			&AddField{Model: "invoice", Field: FieldSpec{Name: "cust", Type: Int, References: &Reference{Table: bad, Column: "id"}}},
			&AddField{Model: "invoice", Field: FieldSpec{Name: "cust", Type: Int, References: &Reference{Table: "invoice", Column: bad}}},
			&RenameField{Model: "invoice", From: "name", To: bad},
			&AlterField{Model: "invoice", Field: FieldSpec{Name: "name", Type: String, References: &Reference{Table: bad, Column: "id"}}},
		)
	}
	ops = append(ops,
		&AddField{Model: "invoice", Field: FieldSpec{Name: "n", Type: "Money"}},
		&AddField{Model: "invoice", Field: FieldSpec{Name: "n", Type: Int, Default: jsonValue(t, "1; DROP TABLE acme.invoice")}},
		&AddField{Model: "invoice", Field: FieldSpec{Name: "n", Type: Int, Default: jsonValue(t, 1<<40)}},
		&AddField{Model: "invoice", Field: FieldSpec{Name: "n", Type: Boolean, Default: jsonValue(t, "true")}},
		&AddField{Model: "invoice", Field: FieldSpec{Name: "n", Type: DateTime, Default: jsonValue(t, "now()")}},
		&AddField{Model: "invoice", Field: FieldSpec{Name: "n", Type: Int, MaxLength: 10}},
		&AddField{Model: "invoice", Field: FieldSpec{Name: "n", Type: String, MaxLength: 3, Default: jsonValue(t, "toolong")}},
		&AddField{Model: "invoice", Field: FieldSpec{Name: "n", Type: Text, Default: jsonValue(t, "nul\x00byte")}},
		&AddField{Model: "invoice", Field: FieldSpec{Name: "n", Type: Int, References: &Reference{Table: "invoice", Column: "id", OnDelete: "DROP TABLE"}}},
		&AddField{Model: "invoice", Field: FieldSpec{Name: "n", Type: Int, Nullable: nullable(false), References: &Reference{Table: "invoice", Column: "id", OnDelete: SetNull}}},
		&AddField{Model: "invoice", Field: FieldSpec{Name: "n", Type: Int, References: &Reference{Schema: "pg_catalog", Table: "pg_class", Column: "oid"}}},
	)
	for _, bad := range []string{"", "Beta", "-beta", "be ta", "beta;", `be"ta`, strings.Repeat("b", 64)} {
		ops = append(ops, &CreateTenant{Org: bad})
	}
	schemas := scalar[int](t, db, "SELECT count(*)::int FROM pg_catalog.pg_namespace")

	for _, op := range ops {
		_, err := db.engine.Apply(testCtx(t), "acme", op)
		wantErr[*InvalidSpecError](t, err, "22023")
	}
	if n := tableCount(t, db, "acme"); n != 1 {
		t.Errorf("%d tables in acme, want 1", n)
	}
	if cols := columnNames(t, db, "acme", "invoice"); !slices.Equal(cols, []string{"id", "name"}) {
		t.Errorf("invoice columns %v, want [id name]", cols)
	}
	if n := scalar[int](t, db, "SELECT count(*)::int FROM pg_catalog.pg_namespace"); n != schemas {
		t.Errorf("schemas %d -> %d", schemas, n)
	}
	if n := historyRows(t, db, "acme"); n != 1 {
		t.Errorf("history rows %d, want 1", n)
	}
	if n := scalar[int](t, db, "SELECT count(*)::int FROM pgmigrate.models"); n != 1 {
		t.Errorf("models in the metadata: %d, want 1", n)
	}
	checkAgree(t, db, "acme", "acme", "invoice")
}

// blockedOptions retry on a blocked table often enough to outlast a lock
// held for a short while.
func blockedOptions() Options {
	opts := testOptions()
	opts.Retry = Retry{MaxAttempts: 10, Delay: 50 * time.Millisecond, MaxDelay: 200 * time.Millisecond}
	return opts
}

// lockInvoice is what the blockers run: a lock any reader takes, which
// DDL must wait for.
const lockInvoice = "LOCK TABLE acme.invoice IN ACCESS SHARE MODE"

var addAmount = &AddField{Model: "invoice", Field: FieldSpec{Name: "amount", Type: Int}}

func TestLockTimeoutRetriedUntilBlockerLeaves(t *testing.T) {
	rec := &countingRecorder{}
	opts := blockedOptions()
	opts.Recorder = rec
	db := newInvoiceDB(t, opts)
	b := newBlocker(t, db, lockInvoice)
	released := b.releaseAfter(500 * time.Millisecond)

	r, err := db.engine.Apply(testCtx(t), "acme", addAmount)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if err := <-released; err != nil {
		t.Fatal(err)
	}
	wantApplied(t, r, "ADD COLUMN")
	if r.Attempts < 2 {
		t.Errorf("attempts %d, want more than one behind the blocker", r.Attempts)
	}
	if rec.retries["55P03"] != r.Attempts-1 {
		t.Errorf("recorder heard retries %v, want %d of 55P03", rec.retries, r.Attempts-1)
	}
	if cols := columnNames(t, db, "acme", "invoice"); !slices.Equal(cols, []string{"id", "name", "amount"}) {
		t.Errorf("columns %v", cols)
	}
	checkAgree(t, db, "acme", "acme", "invoice")
	checkLastHistory(t, db, "acme", 2, addAmount, r)
}

func TestLockTimeoutExhaustsRetries(t *testing.T) {
	opts := blockedOptions()
	opts.Retry.MaxAttempts = 3
	db := newInvoiceDB(t, opts)
	b := newBlocker(t, db, lockInvoice)

	r, err := db.engine.Apply(testCtx(t), "acme", addAmount)
	wantErr[*pgconn.PgError](t, err, "55P03")
	if r.Attempts != 3 {
		t.Errorf("attempts %d, want 3", r.Attempts)
	}
	if err := b.release(); err != nil {
		t.Fatal(err)
	}
	if cols := columnNames(t, db, "acme", "invoice"); !slices.Equal(cols, []string{"id", "name"}) {
		t.Errorf("columns %v after the lock timeout, want [id name]", cols)
	}
	checkAgree(t, db, "acme", "acme", "invoice")
	if n := historyRows(t, db, "acme"); n != 1 {
		t.Errorf("history rows %d, want 1", n)
	}

	// Nothing is left held: once the blocker is gone it applies at once.
	r = db.apply(t, "acme", addAmount)
	if r.Status != Applied || r.Attempts != 1 {
		t.Errorf("after the blocker left: %+v, want applied at the first attempt", r)
	}
}

func TestTerminatedBackendRetried(t *testing.T) {
	opts := blockedOptions()
	opts.LockTimeout = 5 * time.Second
	db := newInvoiceDB(t, opts)
	b := newBlocker(t, db, lockInvoice)
	ctx := testCtx(t)

	type outcome struct {
		r   Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		r, err := db.engine.Apply(ctx, "acme", addAmount)
		done <- outcome{r, err}
	}()

	var pid int32
	for pid == 0 {
		err := db.pool.QueryRow(ctx, `SELECT COALESCE(max(pid), 0) FROM pg_catalog.pg_stat_activity
WHERE datname = $1 AND query LIKE 'ALTER TABLE%' AND wait_event_type = 'Lock'`, db.name).Scan(&pid)
		if err != nil {
			t.Fatalf("waiting for the engine's ALTER TABLE to block: %v", err)
		}
		select {
		case o := <-done:
			t.Fatalf("apply returned before it was blocked: %+v, %v", o.r, o.err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !scalar[bool](t, db, "SELECT pg_terminate_backend($1)", pid) {
		t.Fatalf("backend %d not terminated", pid)
	}
	if err := b.release(); err != nil {
		t.Fatal(err)
	}

	var o outcome
	select {
	case o = <-done:
	case <-ctx.Done():
		t.Fatal("apply did not return")
	}
	if o.err != nil {
		t.Fatalf("apply: %v", o.err)
	}
	wantApplied(t, o.r, "ADD COLUMN")
	if o.r.Attempts < 2 {
		t.Errorf("attempts %d, want a retry after the terminated backend", o.r.Attempts)
	}
	if cols := columnNames(t, db, "acme", "invoice"); !slices.Equal(cols, []string{"id", "name", "amount"}) {
		t.Errorf("columns %v, want amount exactly once", cols)
	}
	checkAgree(t, db, "acme", "acme", "invoice")
	checkLastHistory(t, db, "acme", 2, addAmount, o.r)
}

func TestUniqueOnDuplicatesLeavesNothing(t *testing.T) {
	db := newInvoiceDB(t, testOptions())
	db.exec(t, `INSERT INTO acme.invoice (id, name) VALUES (1, 'a'), (2, 'a'), (3, 'b')`)

	_, err := db.engine.Apply(testCtx(t), "acme", &AlterField{Model: "invoice", Field: FieldSpec{Name: "name", Type: String, Unique: true}})
	wantErr[*pgconn.PgError](t, err, "23505")
	if idx := indexesOn(t, db, "acme", "invoice", "name"); len(idx) != 0 {
		t.Errorf("indexes left on name: %+v", idx)
	}
	if u := constraintOfType(constraintsOn(t, db, "acme", "invoice", "name"), "u"); u != nil {
		t.Errorf("unique constraint left: %+v", *u)
	}

	// A new unique column whose default repeats on every row: refused
	// up front or failing on the duplicates, either way leaving nothing.
	_, err = db.engine.Apply(testCtx(t), "acme", &AddField{Model: "invoice", Field: FieldSpec{Name: "code", Type: String, Unique: true, Default: jsonValue(t, "same")}})
	if code := sqlState(err); code != "23505" && code != "55000" {
		t.Errorf("unique column with a default on rows: %v, want 23505 or 55000", err)
	}
	if cols := columnNames(t, db, "acme", "invoice"); !slices.Equal(cols, []string{"id", "name"}) {
		t.Errorf("columns %v, want [id name]", cols)
	}

	if n := scalar[int](t, db, `SELECT count(*)::int FROM pg_catalog.pg_index x
JOIN pg_catalog.pg_class c ON c.oid = x.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'acme' AND NOT x.indisvalid`); n != 0 {
		t.Errorf("%d invalid indexes left in acme", n)
	}
	if m := checkAgree(t, db, "acme", "acme", "invoice"); m.Field("name").Unique {
		t.Error("metadata says name is unique")
	}
	if n := historyRows(t, db, "acme"); n != 1 {
		t.Errorf("history rows %d, want 1", n)
	}
}

func TestNotNullWithoutDefaultOnRowsRefused(t *testing.T) {
	db := newInvoiceDB(t, testOptions())
	db.exec(t, `INSERT INTO acme.invoice (id, name) VALUES (1, NULL), (2, 'b')`)

	for _, op := range []Operation{
		&AlterField{Model: "invoice", Field: FieldSpec{Name: "name", Type: String, Nullable: nullable(false)}},
		&AddField{Model: "invoice", Field: FieldSpec{Name: "amount", Type: Int, Nullable: nullable(false)}},
	} {
		t.Run(op.Kind(), func(t *testing.T) {
			_, err := db.engine.Apply(testCtx(t), "acme", op)
			if e := wantErr[*UnsafeChangeError](t, err, "55000"); e.Hint() == "" {
				t.Error("no hint")
			}
		})
	}
	if cols := columnNames(t, db, "acme", "invoice"); !slices.Equal(cols, []string{"id", "name"}) {
		t.Errorf("columns %v, want [id name]", cols)
	}
	if c := findColumn(liveColumns(t, db, "acme", "invoice"), "name"); c.NotNull {
		t.Error("name became NOT NULL")
	}
	if m := checkAgree(t, db, "acme", "acme", "invoice"); !m.Field("name").IsNullable() {
		t.Error("metadata says name is NOT NULL")
	}
	if n := historyRows(t, db, "acme"); n != 1 {
		t.Errorf("history rows %d, want 1", n)
	}
}
