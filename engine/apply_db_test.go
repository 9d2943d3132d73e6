package engine

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

func TestCreateModelRoundTrip(t *testing.T) {
	db := newTestDB(t, testOptions(), "acme")
	op := &CreateModel{Model: "invoice", Fields: []FieldSpec{
		{Name: "id", Type: Int, PrimaryKey: true},
		{Name: "name", Type: String, MaxLength: 40, Nullable: nullable(false)},
		{Name: "paid", Type: Boolean, Default: jsonValue(t, false)},
		{Name: "issued", Type: DateTime},
		{Name: "notes", Type: Text},
		{Name: "data", Type: Json},
		{Name: "total", Type: Float, Default: jsonValue(t, 2.5)},
		{Name: "code", Type: String, Unique: true},
	}}
	r := db.apply(t, "acme", op)
	wantApplied(t, r, "CREATE TABLE")
	if r.Org != "acme" || r.Model != "invoice" {
		t.Errorf("result names %s.%s, want acme.invoice", r.Org, r.Model)
	}

	checkAgree(t, db, "acme", "acme", "invoice")
	if c := findColumn(liveColumns(t, db, "acme", "invoice"), "name"); c.Type != "character varying(40)" || !c.NotNull {
		t.Errorf("live name column %+v, want varchar(40) NOT NULL", *c)
	}
	db.exec(t, `INSERT INTO acme.invoice (id, name) VALUES (1, 'first')`)
	if got := scalar[string](t, db, "SELECT format('%s %s', paid::text, total) FROM acme.invoice"); got != "false 2.5" {
		t.Errorf("defaults of an inserted row: %q, want %q", got, "false 2.5")
	}
	checkLastHistory(t, db, "acme", 1, op, r)

	wantUnchanged(t, db, "acme", op)
	conflict := &CreateModel{Model: "invoice", Fields: []FieldSpec{{Name: "id", Type: Int, PrimaryKey: true}, {Name: "name", Type: Text}}}
	_, err := db.engine.Apply(testCtx(t), "acme", conflict)
	wantErr[*ModelConflictError](t, err, "42P07")
	if n := historyRows(t, db, "acme"); n != 1 {
		t.Errorf("history rows after a conflict: %d, want 1", n)
	}
	models, err := db.engine.ListModels(testCtx(t), "acme")
	if err != nil || !slices.Equal(models, []string{"invoice"}) {
		t.Errorf("list models: %v, %v", models, err)
	}
}

func TestAddFieldRoundTrip(t *testing.T) {
	db := newInvoiceDB(t, testOptions())
	db.exec(t, `INSERT INTO acme.invoice (id, name) VALUES (1, 'first')`)

	op := &AddField{Model: "invoice", Field: FieldSpec{Name: "amount", Type: Float, Nullable: nullable(false), Default: jsonValue(t, 1.5)}}
	r := db.apply(t, "acme", op)
	wantApplied(t, r, "ADD COLUMN")
	if r.Field != "amount" {
		t.Errorf("result field %q, want amount", r.Field)
	}
	m := checkAgree(t, db, "acme", "acme", "invoice")
	if !slices.Equal(fieldNamesOf(m), []string{"id", "name", "amount"}) {
		t.Errorf("metadata fields %v", fieldNamesOf(m))
	}
	if got := scalar[float64](t, db, "SELECT amount FROM acme.invoice WHERE id = 1"); got != 1.5 {
		t.Errorf("existing row's amount %v, want the default 1.5", got)
	}
	checkLastHistory(t, db, "acme", 2, op, r)

	wantUnchanged(t, db, "acme", op)
	_, err := db.engine.Apply(testCtx(t), "acme", &AddField{Model: "invoice", Field: FieldSpec{Name: "amount", Type: Int}})
	if e := wantErr[*FieldConflictError](t, err, "42701"); e.Field != "amount" || e.Model != "invoice" {
		t.Errorf("conflict names %s.%s", e.Model, e.Field)
	}
	_, err = db.engine.Apply(testCtx(t), "acme", &AddField{Model: "nosuch", Field: FieldSpec{Name: "amount", Type: Int}})
	wantErr[*UnknownModelError](t, err, "42P01")
	if tableExists(t, db, "acme", "nosuch") {
		t.Error("add_field to an unknown model created its table")
	}
	checkAgree(t, db, "acme", "acme", "invoice")
	if n := historyRows(t, db, "acme"); n != 2 {
		t.Errorf("history rows after failed operations: %d, want 2", n)
	}
}

func TestRenameFieldRoundTrip(t *testing.T) {
	db := newInvoiceDB(t, testOptions())
	db.exec(t, `INSERT INTO acme.invoice (id, name) VALUES (1, 'kept')`)

	op := &RenameField{Model: "invoice", From: "name", To: "title"}
	r := db.apply(t, "acme", op)
	wantApplied(t, r, "RENAME COLUMN")
	if cols := columnNames(t, db, "acme", "invoice"); !slices.Equal(cols, []string{"id", "title"}) {
		t.Errorf("live columns %v, want [id title]", cols)
	}
	checkAgree(t, db, "acme", "acme", "invoice")
	if got := scalar[string](t, db, "SELECT title FROM acme.invoice WHERE id = 1"); got != "kept" {
		t.Errorf("renamed column holds %q, want kept", got)
	}
	checkLastHistory(t, db, "acme", 2, op, r)

	wantUnchanged(t, db, "acme", op)
	_, err := db.engine.Apply(testCtx(t), "acme", &RenameField{Model: "invoice", From: "nosuch", To: "other"})
	wantErr[*UnknownFieldError](t, err, "42703")
	_, err = db.engine.Apply(testCtx(t), "acme", &RenameField{Model: "invoice", From: "id", To: "title"})
	wantErr[*FieldConflictError](t, err, "42701")
	if cols := columnNames(t, db, "acme", "invoice"); !slices.Equal(cols, []string{"id", "title"}) {
		t.Errorf("live columns after failed renames %v, want [id title]", cols)
	}
	checkAgree(t, db, "acme", "acme", "invoice")
	if n := historyRows(t, db, "acme"); n != 2 {
		t.Errorf("history rows after failed renames: %d, want 2", n)
	}
}

func TestAlterFieldRoundTrip(t *testing.T) {
	db := newInvoiceDB(t, testOptions())
	db.apply(t, "acme", &AddField{Model: "invoice", Field: FieldSpec{Name: "code", Type: String}})
	n := 2

	// alter applies op, checks the catalog against the metadata and the
	// history, and that applying it again changes nothing.
	alter := func(field FieldSpec, contains ...string) Result {
		t.Helper()
		op := &AlterField{Model: "invoice", Field: field}
		r := db.apply(t, "acme", op)
		wantApplied(t, r, contains...)
		n++
		checkAgree(t, db, "acme", "acme", "invoice")
		checkLastHistory(t, db, "acme", n, op, r)
		wantUnchanged(t, db, "acme", op)
		return r
	}
	uniqueOn := func(column string) *liveConstraint {
		t.Helper()
		return constraintOfType(constraintsOn(t, db, "acme", "invoice", column), "u")
	}

	// On the empty table.
	alter(FieldSpec{Name: "code", Type: String, Unique: true})
	if uniqueOn("code") == nil {
		t.Fatal("no unique constraint on code")
	}
	alter(FieldSpec{Name: "name", Type: String, Nullable: nullable(false)}, "SET NOT NULL")
	if c := findColumn(liveColumns(t, db, "acme", "invoice"), "name"); !c.NotNull {
		t.Error("name is still nullable")
	}

	// On the populated table.
	db.exec(t, `INSERT INTO acme.invoice (id, name, code) VALUES (1, 'a', 'A1'), (2, 'b', 'B2')`)
	alter(FieldSpec{Name: "name", Type: String, Nullable: nullable(false), Default: jsonValue(t, "n/a")}, "SET DEFAULT")
	db.exec(t, `INSERT INTO acme.invoice (id) VALUES (3)`)
	if got := scalar[string](t, db, "SELECT name FROM acme.invoice WHERE id = 3"); got != "n/a" {
		t.Errorf("new row's name %q, want the default n/a", got)
	}
	alter(FieldSpec{Name: "name", Type: String}, "DROP NOT NULL", "DROP DEFAULT")
	if c := findColumn(liveColumns(t, db, "acme", "invoice"), "name"); c.NotNull || c.Default != "" {
		t.Errorf("name column %+v, want nullable without default", *c)
	}

	db.apply(t, "acme", &AddField{Model: "invoice", Field: FieldSpec{Name: "ref", Type: Int}})
	n++
	db.exec(t, `UPDATE acme.invoice SET ref = id * 10`)
	alter(FieldSpec{Name: "ref", Type: Int, Unique: true}, "CONCURRENTLY", "USING INDEX")
	for _, idx := range indexesOn(t, db, "acme", "invoice", "ref") {
		if !idx.Valid || !idx.Unique {
			t.Errorf("index %+v on ref, want a valid unique one", idx)
		}
	}
	if uniqueOn("ref") == nil {
		t.Fatal("no unique constraint on ref")
	}
	if _, err := db.pool.Exec(testCtx(t), `INSERT INTO acme.invoice (id, ref) VALUES (4, 10)`); sqlState(err) != "23505" {
		t.Errorf("duplicate ref inserted: %v", err)
	}
	alter(FieldSpec{Name: "ref", Type: Int})
	if u, idx := uniqueOn("ref"), indexesOn(t, db, "acme", "invoice", "ref"); u != nil || len(idx) != 0 {
		t.Errorf("unique dropped, but constraint %v and indexes %v remain", u, idx)
	}

	db.apply(t, "acme", &CreateModel{Model: "customer", Fields: []FieldSpec{{Name: "id", Type: Int, PrimaryKey: true}}})
	db.apply(t, "acme", &AddField{Model: "invoice", Field: FieldSpec{Name: "customer_id", Type: Int}})
	n += 2
	db.exec(t, `INSERT INTO acme.customer VALUES (1), (2); UPDATE acme.invoice SET customer_id = 1 + id % 2`)
	ref := &Reference{Table: "customer", Column: "id", OnDelete: Cascade}
	alter(FieldSpec{Name: "customer_id", Type: Int, References: ref}, "NOT VALID", "VALIDATE CONSTRAINT")
	fk := constraintOfType(constraintsOn(t, db, "acme", "invoice", "customer_id"), "f")
	if fk == nil || !fk.Validated || fk.RefTable != "customer" || fk.RefColumn != "id" {
		t.Fatalf("foreign key %+v, want a validated one to customer.id", fk)
	}
	if _, err := db.pool.Exec(testCtx(t), `INSERT INTO acme.invoice (id, customer_id) VALUES (5, 99)`); sqlState(err) != "23503" {
		t.Errorf("row referencing no customer inserted: %v", err)
	}
	alter(FieldSpec{Name: "customer_id", Type: Int})
	if fk := constraintOfType(constraintsOn(t, db, "acme", "invoice", "customer_id"), "f"); fk != nil {
		t.Errorf("reference dropped, but foreign key %+v remains", *fk)
	}

	_, err := db.engine.Apply(testCtx(t), "acme", &AlterField{Model: "invoice", Field: FieldSpec{Name: "nosuch", Type: Int}})
	wantErr[*UnknownFieldError](t, err, "42703")
	if got := historyRows(t, db, "acme"); got != n {
		t.Errorf("history rows %d, want %d", got, n)
	}
}

func TestDropFieldAndModelRoundTrip(t *testing.T) {
	db := newInvoiceDB(t, testOptions())

	dropField := &DropField{Model: "invoice", Field: "name"}
	r := db.apply(t, "acme", dropField)
	wantApplied(t, r, "DROP COLUMN")
	if cols := columnNames(t, db, "acme", "invoice"); !slices.Equal(cols, []string{"id"}) {
		t.Errorf("live columns %v, want [id]", cols)
	}
	checkAgree(t, db, "acme", "acme", "invoice")
	checkLastHistory(t, db, "acme", 2, dropField, r)
	wantUnchanged(t, db, "acme", dropField)

	dropModel := &DropModel{Model: "invoice"}
	r = db.apply(t, "acme", dropModel)
	wantApplied(t, r, "DROP TABLE")
	if tableExists(t, db, "acme", "invoice") {
		t.Error("table still exists")
	}
	_, err := db.engine.Describe(testCtx(t), "acme", "invoice")
	wantErr[*UnknownModelError](t, err, "42P01")
	if n := scalar[int](t, db, "SELECT count(*)::int FROM pgmigrate.fields WHERE org = 'acme'"); n != 0 {
		t.Errorf("%d field rows left in the metadata", n)
	}
	if models, err := db.engine.ListModels(testCtx(t), "acme"); err != nil || len(models) != 0 {
		t.Errorf("list models: %v, %v", models, err)
	}
	h := checkLastHistory(t, db, "acme", 3, dropModel, r)
	if h.Field != "" {
		t.Errorf("drop_model history names field %q", h.Field)
	}
	wantUnchanged(t, db, "acme", dropModel)

	var ops []string
	for _, e := range history(t, db, "acme") {
		ops = append(ops, e.Operation)
	}
	if want := []string{"create_model", "drop_field", "drop_model"}; !slices.Equal(ops, want) {
		t.Errorf("history operations %v, want %v", ops, want)
	}
}

func TestPlanChangesNothing(t *testing.T) {
	db := newInvoiceDB(t, testOptions())
	db.exec(t, `INSERT INTO acme.invoice (id, name) VALUES (1, 'a')`)
	cols := liveColumns(t, db, "acme", "invoice")
	meta := describe(t, db, "acme", "invoice")

	addField := &AddField{Model: "invoice", Field: FieldSpec{Name: "amount", Type: Int}}
	plans := []struct {
		op       Operation
		contains string
	}{
		{addField, "ADD COLUMN"},
		{&CreateModel{Model: "customer", Fields: []FieldSpec{{Name: "id", Type: Int, PrimaryKey: true}}}, "CREATE TABLE"},
		{&AlterField{Model: "invoice", Field: FieldSpec{Name: "name", Type: String, Unique: true}}, "UNIQUE"},
		{&RenameField{Model: "invoice", From: "name", To: "title"}, "RENAME COLUMN"},
		{&DropField{Model: "invoice", Field: "name"}, "DROP COLUMN"},
		{&DropModel{Model: "invoice"}, "DROP TABLE"},
	}
	for _, p := range plans {
		r, err := db.engine.Plan(testCtx(t), "acme", p.op)
		if err != nil {
			t.Fatalf("plan %s: %v", p.op.Kind(), err)
		}
		if r.Status != Planned {
			t.Errorf("plan %s: status %s, want planned", p.op.Kind(), r.Status)
		}
		wantStatements(t, r.Statements, p.contains)
	}
	r, err := db.engine.Plan(testCtx(t), "acme", &CreateModel{Model: "invoice", Fields: invoiceFields()})
	if err != nil || r.Status != Unchanged {
		t.Errorf("plan of the model in place: %+v, %v; want unchanged", r, err)
	}

	if got := liveColumns(t, db, "acme", "invoice"); !slices.Equal(got, cols) {
		t.Errorf("live columns changed by plans: %v -> %v", cols, got)
	}
	if idx := indexesOn(t, db, "acme", "invoice", "name"); len(idx) != 0 {
		t.Errorf("plans left indexes %v", idx)
	}
	if tableExists(t, db, "acme", "customer") || tableCount(t, db, "acme") != 1 {
		t.Error("plans created a table")
	}
	if got := describe(t, db, "acme", "invoice"); !slices.Equal(fieldNamesOf(got), fieldNamesOf(meta)) {
		t.Errorf("metadata changed by plans: %v -> %v", fieldNamesOf(meta), fieldNamesOf(got))
	}
	if n := historyRows(t, db, "acme"); n != 1 {
		t.Errorf("history rows after plans: %d, want 1", n)
	}

	planned, err := db.engine.Plan(testCtx(t), "acme", addField)
	if err != nil {
		t.Fatal(err)
	}
	if applied := db.apply(t, "acme", addField); !slices.Equal(applied.Statements, planned.Statements) {
		t.Errorf("applied %q, planned %q", applied.Statements, planned.Statements)
	}
}

func TestConcurrentEnginesAddFields(t *testing.T) {
	opts := testOptions()
	opts.Retry.MaxAttempts = 10
	db := newInvoiceDB(t, opts)
	engines := []*Engine{db.engine, db.newEngine(t, opts)}
	const perEngine = 10

	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, len(engines)*perEngine)
	want := []string{"id", "name"}
	for i, e := range engines {
		for k := range perEngine {
			name := fmt.Sprintf("f%d_%d", i, k)
			want = append(want, name)
			wg.Go(func() {
				r, err := e.Apply(ctx, "acme", &AddField{Model: "invoice", Field: FieldSpec{Name: name, Type: Int}})
				if err == nil && r.Status != Applied {
					err = fmt.Errorf("%s: status %s", name, r.Status)
				}
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}

	m := checkAgree(t, db, "acme", "acme", "invoice")
	got := fieldNamesOf(m)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("metadata fields %v, want %v", got, want)
	}
	h := history(t, db, "acme")
	var fields []string
	for _, e := range h[1:] {
		fields = append(fields, e.Field)
	}
	slices.Sort(fields)
	if len(h) != 1+len(engines)*perEngine || !slices.Equal(fields, fieldsExcept(want, "id", "name")) {
		t.Errorf("history fields %v, want one entry per added field", fields)
	}
	// Operations are serialised: in the order they were applied, history
	// ids only grow.
	rows, err := db.pool.Query(ctx, "SELECT id FROM pgmigrate.history WHERE org = 'acme' ORDER BY applied_at, id")
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Errorf("history ids in the order applied: %v, want strictly increasing", ids)
	}
}

// fieldsExcept returns names without the given ones.
func fieldsExcept(names []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return slices.Contains(drop, n) })
}

func TestConcurrentInit(t *testing.T) {
	db := newTestDB(t, testOptions())
	engines := []*Engine{db.engine}
	for range 3 {
		engines = append(engines, db.newEngine(t, testOptions()))
	}
	ctx := testCtx(t)
	start := make(chan struct{})
	errs := make([]error, len(engines))
	var wg sync.WaitGroup
	for i, e := range engines {
		wg.Go(func() {
			<-start
			errs[i] = e.Init(ctx)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("engine %d: init: %v", i, err)
		}
	}
	if got := scalar[string](t, db, "SELECT string_agg(version::text, ',') FROM pgmigrate.version"); got != "3" {
		t.Errorf("catalog versions %q, want exactly 3", got)
	}
	for _, table := range []string{"tenants", "models", "fields", "history", "locks", "intents"} {
		if !tableExists(t, db, "pgmigrate", table) {
			t.Errorf("pgmigrate.%s missing", table)
		}
	}
	if err := db.engine.Init(ctx); err != nil {
		t.Errorf("init again: %v", err)
	}
	if got := scalar[string](t, db, "SELECT string_agg(version::text, ',') FROM pgmigrate.version"); got != "3" {
		t.Errorf("catalog versions after another init %q, want exactly 3", got)
	}
}

func TestTenantRoundTrip(t *testing.T) {
	db := newTestDB(t, testOptions(), "acme")
	before := scalar[[]string](t, db, "SELECT array_agg(rolname::text) FROM pg_catalog.pg_roles")
	// tenantRoles are the roles made since the test began that may use
	// beta's schema.
	tenantRoles := func() []string {
		t.Helper()
		return scalar[[]string](t, db, `SELECT COALESCE(array_agg(r.rolname::text ORDER BY r.rolname), '{}')
FROM pg_catalog.pg_roles r
WHERE NOT r.rolsuper AND r.rolname <> ALL ($1)
  AND EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'beta')
  AND has_schema_privilege(r.oid, 'beta', 'USAGE')`, before)
	}
	roleCount := func(roles []string) int {
		t.Helper()
		return scalar[int](t, db, "SELECT count(*)::int FROM pg_catalog.pg_roles WHERE rolname = ANY ($1)", roles)
	}
	metaRows := func() int {
		t.Helper()
		return scalar[int](t, db, `SELECT (SELECT count(*) FROM pgmigrate.tenants WHERE org = 'beta')
     + (SELECT count(*) FROM pgmigrate.models WHERE org = 'beta')
     + (SELECT count(*) FROM pgmigrate.fields WHERE org = 'beta')`)
	}

	for round := 1; round <= 2; round++ {
		create := &CreateTenant{Org: "beta"}
		r := db.apply(t, "beta", create)
		wantApplied(t, r, "CREATE SCHEMA")
		if !schemaExists(t, db, "beta") {
			t.Fatalf("round %d: schema beta missing", round)
		}
		if got := scalar[string](t, db, "SELECT schema FROM pgmigrate.tenants WHERE org = 'beta'"); got != "beta" {
			t.Errorf("round %d: tenant row schema %q", round, got)
		}
		roles := tenantRoles()
		if len(roles) == 0 {
			t.Fatalf("round %d: no new role may use schema beta", round)
		}
		for _, role := range roles {
			if scalar[bool](t, db, "SELECT has_schema_privilege($1, 'acme', 'USAGE')", role) {
				t.Errorf("round %d: beta's role %s may use schema acme", round, role)
			}
		}
		if tableCount(t, db, "beta") != 0 {
			t.Errorf("round %d: a new tenant has tables", round)
		}

		model := &CreateModel{Model: "invoice", Fields: invoiceFields()}
		db.apply(t, "beta", model)
		checkAgree(t, db, "beta", "beta", "invoice")
		if !tableExists(t, db, "beta", "invoice") || tableCount(t, db, "acme") != 0 {
			t.Errorf("round %d: model created in the wrong schema", round)
		}

		r = db.apply(t, "beta", &DropTenant{Org: "beta"})
		wantApplied(t, r, "DROP SCHEMA")
		if schemaExists(t, db, "beta") {
			t.Errorf("round %d: schema beta still exists", round)
		}
		if n := roleCount(roles); n != 0 {
			t.Errorf("round %d: %d of roles %v still exist", round, n, roles)
		}
		if n := metaRows(); n != 0 {
			t.Errorf("round %d: %d metadata rows of beta left", round, n)
		}
		if !schemaExists(t, db, "acme") {
			t.Errorf("round %d: dropping beta dropped acme", round)
		}
	}
}

// TestAddFieldAdoptsHandmadeColumn: a column made by hand that matches the
// spec is adopted: metadata recorded, history written with no statements,
// status unchanged.
func TestAddFieldAdoptsHandmadeColumn(t *testing.T) {
	db := newTestDB(t, testOptions(), "acme")
	db.apply(t, "acme", &CreateModel{Model: "items", Fields: []FieldSpec{{Name: "id", Type: Int, PrimaryKey: true}}})
	db.exec(t, "ALTER TABLE acme.items ADD COLUMN handmade int")
	op, r := adoptField(t, db, `{"name":"handmade","type":"Int"}`)
	m, err := db.engine.Describe(testCtx(t), "acme", "items")
	if err != nil || m.Field("handmade") == nil {
		t.Fatalf("metadata after adoption: %+v (%v)", m, err)
	}
	checkLastHistory(t, db, "acme", 2, op, r)
	if drifts, err := db.engine.Verify(testCtx(t), "acme"); err != nil || len(drifts) != 0 {
		t.Errorf("verify after adoption: %+v (%v)", drifts, err)
	}
}

// TestReadsRetryLostConnections: the reads of an engine whose pool holds
// connections PostgreSQL has just ended answer, on fresh connections.
func TestReadsRetryLostConnections(t *testing.T) {
	db := newTestDB(t, testOptions(), "acme")
	db.apply(t, "acme", &CreateModel{Model: "items", Fields: []FieldSpec{{Name: "id", Type: Int, PrimaryKey: true}}})
	ctx := testCtx(t)
	for round := range 3 {
		db.exec(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
		if models, err := db.engine.ListModels(ctx, "acme"); err != nil || len(models) != 1 {
			t.Fatalf("round %d: list_models after the engine's connections ended: %q (%v)", round, models, err)
		}
		if _, err := db.engine.Verify(ctx, "acme"); err != nil {
			t.Fatalf("round %d: verify after the engine's connections ended: %v", round, err)
		}
	}
}

// TestAddFieldAdoptsHandmadeConstraints: a column made by hand with a
// unique constraint and a foreign key, under the engine's names or others,
// that match the spec is adopted like a bare column.
func TestAddFieldAdoptsHandmadeConstraints(t *testing.T) {
	for _, tc := range []struct{ name, ddl string }{
		{"engine's names", "ALTER TABLE acme.items ADD COLUMN owner int UNIQUE REFERENCES acme.owners (id) ON DELETE RESTRICT"},
		{"own names", "ALTER TABLE acme.items ADD COLUMN owner int CONSTRAINT one_owner UNIQUE CONSTRAINT owned_by REFERENCES acme.owners (id) ON DELETE RESTRICT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := newTestDB(t, testOptions(), "acme")
			id := []FieldSpec{{Name: "id", Type: Int, PrimaryKey: true}}
			db.apply(t, "acme", &CreateModel{Model: "owners", Fields: id})
			db.apply(t, "acme", &CreateModel{Model: "items", Fields: id})
			db.exec(t, "INSERT INTO acme.owners VALUES (1); INSERT INTO acme.items VALUES (1)")
			db.exec(t, tc.ddl)
			op, r := adoptField(t, db, `{"name":"owner","type":"Int","unique":true,"references":{"table":"owners","column":"id","onDelete":"RESTRICT"}}`)
			checkLastHistory(t, db, "acme", 3, op, r)
			checkAgree(t, db, "acme", "acme", "items")
			if drifts, err := db.engine.Verify(testCtx(t), "acme"); err != nil || len(drifts) != 0 {
				t.Errorf("verify after adoption: %+v (%v)", drifts, err)
			}
			wantUnchanged(t, db, "acme", op)
		})
	}
}

// adoptField applies add_field of spec to acme's items, whose column was
// made by hand, and checks that it is adopted: unchanged, no statements.
func adoptField(t *testing.T, db *testDB, spec string) (*AddField, Result) {
	t.Helper()
	f, err := ParseField([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	op := &AddField{Model: "items", Field: f}
	r := db.apply(t, "acme", op)
	if r.Status != Unchanged || len(r.Statements) != 0 {
		t.Fatalf("add_field of the hand-made column: %+v, want unchanged without statements", r)
	}
	return op, r
}
