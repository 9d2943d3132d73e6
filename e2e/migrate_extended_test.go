package e2e

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Fields the extended-protocol tests add to invoice.
const (
	noteField   = `{"name":"note","type":"Text"}`
	memoField   = `{"name":"memo","type":"Text"}`
	addNoteSQL  = `ALTER TABLE "acme"."invoice" ADD COLUMN "note" text`
	addFieldSQL = "CALL migrate.add_field($1, $2)"
)

// commandResult is the row a mutating migrate command returns.
type commandResult struct {
	Status, Org, Model, Field, Statements string
	Attempts                              int
	DurationMS                            int64
}

// callCommand runs a mutating migrate command with args on conn and
// returns its row.
func callCommand(t testing.TB, conn *pgx.Conn, sql string, args ...any) commandResult {
	t.Helper()
	var r commandResult
	err := conn.QueryRow(testContext(t), sql, args...).Scan(&r.Status, &r.Org, &r.Model, &r.Field, &r.Statements, &r.Attempts, &r.DurationMS)
	if err != nil {
		t.Fatalf("%s %q: %v", sql, args, err)
	}
	return r
}

// wantCommand fails t unless r has status, field and statements, in
// invoice of org acme, with attempts (duration_ms varies and is only
// checked to be non-negative).
func wantCommand(t testing.TB, r commandResult, status, field, statements string, attempts int) {
	t.Helper()
	want := commandResult{Status: status, Org: "acme", Model: "invoice", Field: field, Statements: statements, Attempts: attempts}
	got := r
	got.DurationMS = 0
	if got != want || r.DurationMS < 0 {
		t.Fatalf("got %+v, want %+v", r, want)
	}
}

// migrateExtendedSetup serves org acme, whose invoice model exists, and
// connects to it through the proxy with pgx in its default mode, which
// prepares statements and asks for binary results where it can.
func migrateExtendedSetup(t testing.TB) (tenants, *proxyProc, *pgx.Conn) {
	t.Helper()
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	conn := p.connect(t, "postgres", "", "acme")
	mustExec(t, conn, createInvoice)
	return tn, p, conn
}

// queryDescribed runs a describe call and returns its rows.
func queryDescribed(t testing.TB, conn *pgx.Conn, sql string, args ...any) []describedField {
	t.Helper()
	rows, err := conn.Query(testContext(t), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[describedField])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return got
}

// wantDescribed fails t unless got is want, row by row.
func wantDescribed(t testing.TB, got, want []describedField) {
	t.Helper()
	if len(got) != len(want) || !slices.EqualFunc(got, want, equalDescribed) {
		t.Fatalf("describe returned %+v, want %+v", got, want)
	}
}

// invoiceDescribed is what describe returns for createInvoice.
var invoiceDescribed = []describedField{
	{Field: "id", Type: "integer", PrimaryKey: true},
	{Field: "title", Type: "character varying(200)"},
}

func TestMigrateExtendedPgxParams(t *testing.T) {
	tn, _, conn := migrateExtendedSetup(t)
	direct := directConn(t, tn.db)

	wantCommand(t, callCommand(t, conn, addFieldSQL, "invoice", noteField), "applied", "note", addNoteSQL, 1)
	wantCommand(t, callCommand(t, conn, addFieldSQL, "invoice", noteField), "unchanged", "note", "", 1)
	wantCommand(t, callCommand(t, conn, "CALL migrate.add_field($1, $2::jsonb)", "invoice", memoField),
		"applied", "memo", `ALTER TABLE "acme"."invoice" ADD COLUMN "memo" text`, 1)
	wantCommand(t, callCommand(t, conn, "CALL migrate.add_field(field => $2, model => $1)", "invoice", `{"name":"code","type":"Int"}`),
		"applied", "code", `ALTER TABLE "acme"."invoice" ADD COLUMN "code" integer`, 1)
	want := []string{"id integer", "title character varying(200)", "note text", "memo text", "code integer"}
	if got := tableColumns(t, direct, "acme", "invoice"); !slices.Equal(got, want) {
		t.Fatalf("acme.invoice has columns %q, want %q", got, want)
	}

	// dry_run is boolean, so a Go bool is what a pgx user passes for it.
	const dryRun = "CALL migrate.add_field($1, $2, dry_run => $3)"
	for _, c := range []struct {
		name    string
		dryRun  any
		status  string
		applied bool
	}{
		{"text true", "true", "planned", false},
		{"bool true", true, "planned", false},
		{"bool false", false, "applied", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			field := strings.ReplaceAll(c.name, " ", "_")
			attempts := 0
			if c.applied {
				attempts = 1
			}
			r := callCommand(t, conn, dryRun, "invoice", fmt.Sprintf(`{"name":%q,"type":"Int"}`, field), c.dryRun)
			wantCommand(t, r, c.status, field, fmt.Sprintf(`ALTER TABLE "acme"."invoice" ADD COLUMN %q integer`, field), attempts)
			if got := slices.Contains(tableColumns(t, direct, "acme", "invoice"), field+" integer"); got != c.applied {
				t.Fatalf("acme.invoice has column %s: %v, want %v", field, got, c.applied)
			}
		})
	}
}

func TestMigrateExtendedExecModes(t *testing.T) {
	_, _, conn := migrateExtendedSetup(t)
	described := slices.Clone(invoiceDescribed)
	for _, m := range []struct {
		mode  pgx.QueryExecMode
		field string // added to invoice, one per mode
	}{
		{pgx.QueryExecModeCacheStatement, "cached"},
		{pgx.QueryExecModeCacheDescribe, "described"},
		{pgx.QueryExecModeDescribeExec, "describe_exec"},
		{pgx.QueryExecModeExec, "exec"},
		{pgx.QueryExecModeSimpleProtocol, "simple"},
	} {
		t.Run(m.mode.String(), func(t *testing.T) {
			mode, field := m.mode, m.field
			wantDescribed(t, queryDescribed(t, conn, "CALL migrate.describe($1)", mode, "invoice"), described)
			r := callCommand(t, conn, addFieldSQL, mode, "invoice", fmt.Sprintf(`{"name":%q,"type":"Int"}`, field))
			wantCommand(t, r, "applied", field, fmt.Sprintf(`ALTER TABLE "acme"."invoice" ADD COLUMN %q integer`, field), 1)
			described = append(described, describedField{Field: field, Type: "integer", Nullable: true})
			mustWork(t, conn)
		})
	}
}

// TestMigrateExtendedBinaryResults reads describe and history with the
// binary formats pgx asks for (bool, int4, int8, timestamptz) and compares
// them with the same calls in text and with what the cluster holds.
func TestMigrateExtendedBinaryResults(t *testing.T) {
	tn, _, conn := migrateExtendedSetup(t)
	callCommand(t, conn, addFieldSQL, "invoice", noteField)

	want := append(slices.Clone(invoiceDescribed), describedField{Field: "note", Type: "text", Nullable: true})
	wantDescribed(t, queryDescribed(t, conn, "CALL migrate.describe($1)", "invoice"), want)

	history := func(mode pgx.QueryExecMode) []historyEntry {
		t.Helper()
		rows, err := conn.Query(testContext(t), "CALL migrate.history($1)", mode, "invoice")
		if err != nil {
			t.Fatal(err)
		}
		entries, err := pgx.CollectRows(rows, pgx.RowToStructByName[historyEntry])
		if err != nil {
			t.Fatalf("history in mode %v: %v", mode, err)
		}
		return entries
	}
	binary, text := history(pgx.QueryExecModeCacheStatement), history(pgx.QueryExecModeExec)
	if len(binary) != 2 {
		t.Fatalf("history returned %+v, want 2 entries", binary)
	}
	if binary[0].Operation != "create_model" || binary[1].Operation != "add_field" || binary[1].Statements != addNoteSQL {
		t.Fatalf("history returned %+v", binary)
	}
	direct := directConn(t, tn.db)
	for i, e := range binary {
		if e.ID <= 0 || (i > 0 && e.ID <= binary[i-1].ID) || e.Attempts != 1 || e.DurationMS < 0 || e.AppliedAt.IsZero() {
			t.Fatalf("history entry %d: %+v", i, e)
		}
		tx := text[i]
		if e.ID != tx.ID || e.Attempts != tx.Attempts || e.DurationMS != tx.DurationMS || !e.AppliedAt.Equal(tx.AppliedAt) {
			t.Fatalf("history entry %d in binary %+v, in text %+v", i, e, tx)
		}
		var stored historyEntry
		err := direct.QueryRow(testContext(t), "SELECT attempts, duration_ms, applied_at FROM pgmigrate.history WHERE id = $1", e.ID).
			Scan(&stored.Attempts, &stored.DurationMS, &stored.AppliedAt)
		if err != nil {
			t.Fatalf("history entry %d (id %d) in pgmigrate.history: %v", i, e.ID, err)
		}
		if e.Attempts != stored.Attempts || e.DurationMS != stored.DurationMS || !e.AppliedAt.Equal(stored.AppliedAt) {
			t.Fatalf("history entry %d: got %+v, pgmigrate.history holds %+v", i, e, stored)
		}
	}
}

// ledgerTable is an ordinary table created beside the migrate models.
const ledgerTable = "CREATE TABLE ledger (id serial PRIMARY KEY, memo text NOT NULL)"

func TestMigrateExtendedPgxBatch(t *testing.T) {
	tn, _, conn := migrateExtendedSetup(t)
	mustExec(t, conn, ledgerTable)
	ctx := testContext(t)

	batch := &pgx.Batch{}
	batch.Queue("SELECT 1")
	batch.Queue("CALL migrate.list_models()")
	batch.Queue("INSERT INTO ledger (memo) VALUES ($1) RETURNING id, memo", "batched")
	batch.Queue("CALL migrate.describe($1)", "invoice")
	batch.Queue("SELECT 2")
	results := conn.SendBatch(ctx, batch)

	var one, two, id int
	var memo string
	if err := results.QueryRow().Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1: %d, %v", one, err)
	}
	rows, err := results.Query()
	if err != nil {
		t.Fatal(err)
	}
	models, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || !slices.Equal(models, []string{"invoice"}) {
		t.Fatalf("list_models: %q, %v", models, err)
	}
	if err := results.QueryRow().Scan(&id, &memo); err != nil || id != 1 || memo != "batched" {
		t.Fatalf("INSERT RETURNING: %d %q, %v", id, memo, err)
	}
	rows, err = results.Query()
	if err != nil {
		t.Fatal(err)
	}
	described, err := pgx.CollectRows(rows, pgx.RowToStructByName[describedField])
	if err != nil {
		t.Fatal(err)
	}
	wantDescribed(t, described, invoiceDescribed)
	if err := results.QueryRow().Scan(&two); err != nil || two != 2 {
		t.Fatalf("SELECT 2: %d, %v", two, err)
	}
	if err := results.Close(); err != nil {
		t.Fatal(err)
	}
	if got := queryStrings(t, directConn(t, tn.db), "SELECT memo FROM acme.ledger"); !slices.Equal(got, []string{"batched"}) {
		t.Fatalf("acme.ledger holds %q", got)
	}
	mustWork(t, conn)
}

func TestMigrateExtendedBatchError(t *testing.T) {
	tn, _, conn := migrateExtendedSetup(t)
	ctx := testContext(t)
	batch := &pgx.Batch{}
	batch.Queue(`CALL migrate.add_field('nope', '{"name":"x","type":"Int"}')`)
	batch.Queue("SELECT 1")
	results := conn.SendBatch(ctx, batch)
	_, err := results.Exec()
	wantPgError(t, err, "42P01")
	results.Close()
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("ping after the failed batch: %v", err)
	}
	mustWork(t, conn)

	// An ordinary statement failing first: PostgreSQL skips to Sync, so the
	// migrate command after it must not run.
	batch = &pgx.Batch{}
	batch.Queue("SELECT 1 / $1::int", 0)
	batch.Queue(addFieldSQL, "invoice", noteField)
	results = conn.SendBatch(ctx, batch)
	_, err = results.Exec()
	wantPgError(t, err, "22012")
	results.Close()
	mustWork(t, conn)
	if got := tableColumns(t, directConn(t, tn.db), "acme", "invoice"); slices.Contains(got, "note text") {
		t.Fatalf("add_field after the failed statement ran: acme.invoice has %q", got)
	}
}

func TestMigrateExtendedNewColumnInSession(t *testing.T) {
	_, _, conn := migrateExtendedSetup(t)
	ctx := testContext(t)
	if _, err := conn.Exec(ctx, "INSERT INTO invoice (id, title) VALUES ($1, $2)", 1, "before"); err != nil {
		t.Fatal(err)
	}
	wantCommand(t, callCommand(t, conn, addFieldSQL, "invoice", `{"name":"status","type":"String","default":"draft"}`),
		"applied", "status", `ALTER TABLE "acme"."invoice" ADD COLUMN "status" varchar(100) DEFAULT 'draft'`, 1)
	if _, err := conn.Exec(ctx, "INSERT INTO invoice (id, title, status) VALUES ($1, $2, $3)", 2, "after", "paid"); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, "SELECT id, status FROM invoice WHERE id >= $1 ORDER BY id", 1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var id int
		var status string
		err := r.Scan(&id, &status)
		return fmt.Sprintf("%d|%s", id, status), err
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"1|draft", "2|paid"}; !slices.Equal(got, want) {
		t.Fatalf("invoice holds %q, want %q", got, want)
	}
}

func TestMigrateExtendedErrors(t *testing.T) {
	tn, _, conn := migrateExtendedSetup(t)
	ctx := testContext(t)

	err := conn.QueryRow(ctx, addFieldSQL, "invoice", `{"name":"title","type":"Text"}`).Scan()
	if pgErr := wantPgError(t, err, "42701"); pgErr.Detail == "" {
		t.Fatalf("the field conflict has no DETAIL: %+v", pgErr)
	}
	mustWork(t, conn)
	err = conn.QueryRow(ctx, "CALL migrate.no_such_command($1)", "invoice").Scan()
	if pgErr := wantPgError(t, err, "42883"); pgErr.Hint == "" {
		t.Fatalf("the unknown procedure has no HINT: %+v", pgErr)
	}
	mustWork(t, conn)
	wantPgError(t, conn.QueryRow(ctx, "CALL migrate.describe($1)", "receipt").Scan(), "42P01")
	mustWork(t, conn)

	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO invoice (id, title) VALUES ($1, $2)", 1, "rolled back"); err != nil {
		t.Fatal(err)
	}
	err = tx.QueryRow(ctx, addFieldSQL, "invoice", noteField).Scan()
	if pgErr := wantPgError(t, err, "25001"); pgErr.Hint == "" {
		t.Fatalf("the refusal in a transaction has no HINT: %+v", pgErr)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatalf("ROLLBACK after the refused command: %v", err)
	}
	if n := queryValue[int](t, conn, "SELECT count(*) FROM invoice"); n != 0 {
		t.Fatalf("after ROLLBACK invoice holds %d rows", n)
	}
	wantColumns(t, directConn(t, tn.db), "acme", "invoice", "id integer", "title character varying(200)")
}

func TestMigrateExtendedLibPQ(t *testing.T) {
	_, p, _ := migrateExtendedSetup(t)
	db := openPQ(t, p.url("postgres", "", "acme"))
	ctx := testContext(t)

	rows, err := db.QueryContext(ctx, "CALL migrate.describe($1)", "invoice")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []describedField
	for rows.Next() {
		var f describedField
		var def, ref sql.NullString
		if err := rows.Scan(&f.Field, &f.Type, &f.Nullable, &f.Unique, &def, &ref, &f.PrimaryKey); err != nil {
			t.Fatal(err)
		}
		if def.Valid || ref.Valid {
			t.Fatalf("field %s has default %v and references %v", f.Field, def, ref)
		}
		got = append(got, f)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	wantDescribed(t, got, invoiceDescribed)

	var r commandResult
	err = db.QueryRowContext(ctx, addFieldSQL, "invoice", noteField).
		Scan(&r.Status, &r.Org, &r.Model, &r.Field, &r.Statements, &r.Attempts, &r.DurationMS)
	if err != nil {
		t.Fatal(err)
	}
	wantCommand(t, r, "applied", "note", addNoteSQL, 1)
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(note) + $1 FROM invoice", 1).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the new column through lib/pq: %d, %v", n, err)
	}
}

// exchange sends msgs in one write and summarises the answers up to
// ReadyForQuery, one string per message.
func (c *rawConn) exchange(msgs ...pgproto3.FrontendMessage) []string {
	c.t.Helper()
	var out []byte
	for _, m := range msgs {
		var err error
		if out, err = m.Encode(out); err != nil {
			c.t.Fatal(err)
		}
	}
	c.write(out)
	var got []string
	for {
		msg := c.receive()
		got = append(got, summary(msg))
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			return got
		}
	}
}

// summary names a backend message and what tests check of it.
func summary(msg pgproto3.BackendMessage) string {
	switch m := msg.(type) {
	case *pgproto3.ParameterDescription:
		return fmt.Sprintf("ParameterDescription %v", m.ParameterOIDs)
	case *pgproto3.RowDescription:
		var cols []string
		for _, f := range m.Fields {
			cols = append(cols, fmt.Sprintf("%s:%d:%d", f.Name, f.DataTypeOID, f.Format))
		}
		return "RowDescription " + strings.Join(cols, ",")
	case *pgproto3.DataRow:
		vals := make([]string, len(m.Values))
		for i, v := range m.Values {
			vals[i] = string(v)
		}
		return "DataRow " + strings.Join(vals, "|")
	case *pgproto3.CommandComplete:
		return "CommandComplete " + string(m.CommandTag)
	case *pgproto3.ErrorResponse:
		return "ErrorResponse " + m.Code
	case *pgproto3.ReadyForQuery:
		return "ReadyForQuery " + string(m.TxStatus)
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", msg), "*pgproto3.")
}

func TestMigrateExtendedRawWire(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	c := dialRaw(t, p.addr)
	c.login("postgres", "acme")
	c.query(createInvoice)
	c.query(`CALL migrate.create_model('customer', '[{"name":"id","type":"Int"}]')`)
	c.query(ledgerTable)

	describeS := func(name string) *pgproto3.Describe { return &pgproto3.Describe{ObjectType: 'S', Name: name} }
	// run binds params to a fresh unnamed portal of the unnamed statement
	// and executes it.
	run := func(params ...string) []pgproto3.FrontendMessage {
		b := &pgproto3.Bind{}
		for _, v := range params {
			b.Parameters = append(b.Parameters, []byte(v))
		}
		return []pgproto3.FrontendMessage{b, &pgproto3.Execute{}}
	}
	parse := func(sql string, rest ...pgproto3.FrontendMessage) []pgproto3.FrontendMessage {
		return append([]pgproto3.FrontendMessage{&pgproto3.Parse{Query: sql}}, rest...)
	}
	sync := &pgproto3.Sync{}
	steps := []struct {
		what string
		msgs []pgproto3.FrontendMessage
		want []string
	}{
		{"named statement described",
			[]pgproto3.FrontendMessage{&pgproto3.Parse{Name: "s1", Query: "CALL migrate.list_models()"}, describeS("s1"), sync},
			[]string{"ParseComplete", "ParameterDescription []", "RowDescription model:25:0", "ReadyForQuery I"}},
		{"named portal executed, statement closed",
			[]pgproto3.FrontendMessage{&pgproto3.Bind{DestinationPortal: "p1", PreparedStatement: "s1"}, &pgproto3.Execute{Portal: "p1"},
				&pgproto3.Close{ObjectType: 'S', Name: "s1"}, sync},
			[]string{"BindComplete", "DataRow customer", "DataRow invoice", "CommandComplete CALL", "CloseComplete", "ReadyForQuery I"}},
		{"closed statement gone",
			[]pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, sync},
			[]string{"ErrorResponse 26000", "ReadyForQuery I"}},
		{"unnamed migrate statement with a parameter",
			slices.Concat(parse("CALL migrate.describe($1)", describeS("")), run("invoice"), []pgproto3.FrontendMessage{sync}),
			[]string{"ParseComplete", "ParameterDescription [25]",
				"RowDescription field:25:0,type:25:0,nullable:16:0,unique:16:0,default:25:0,references:25:0,primary_key:16:0",
				"BindComplete", "DataRow id|integer|f|f|||t", "DataRow title|character varying(200)|f|f|||f",
				"CommandComplete CALL", "ReadyForQuery I"}},
		{"unnamed name reused by an ordinary statement",
			slices.Concat(parse("SELECT $1::int + 1", describeS("")), run("41"), []pgproto3.FrontendMessage{sync}),
			[]string{"ParseComplete", "ParameterDescription [23]", "RowDescription ?column?:23:0",
				"BindComplete", "DataRow 42", "CommandComplete SELECT 1", "ReadyForQuery I"}},
		{"ordinary and migrate statements in order",
			slices.Concat(parse("SELECT 1", run()...), parse("CALL migrate.list_models()", run()...),
				parse("INSERT INTO ledger (memo) VALUES ($1) RETURNING memo", run("kept")...), []pgproto3.FrontendMessage{sync}),
			[]string{"ParseComplete", "BindComplete", "DataRow 1", "CommandComplete SELECT 1",
				"ParseComplete", "BindComplete", "DataRow customer", "DataRow invoice", "CommandComplete CALL",
				"ParseComplete", "BindComplete", "DataRow kept", "CommandComplete INSERT 0 1", "ReadyForQuery I"}},
		{"ordinary statement skipped after a migrate error",
			slices.Concat(parse(`CALL migrate.add_field('nope', '{"name":"x","type":"Int"}')`, run()...),
				parse("INSERT INTO ledger (memo) VALUES ('skipped')", run()...), []pgproto3.FrontendMessage{sync}),
			[]string{"ParseComplete", "BindComplete", "ErrorResponse 42P01", "ReadyForQuery I"}},
		// PostgreSQL folds 1 / 0 while planning, in Bind.
		{"migrate statement skipped after an ordinary error",
			slices.Concat(parse("SELECT 1 / 0", run()...), parse(addFieldSQL, run("invoice", noteField)...), []pgproto3.FrontendMessage{sync}),
			[]string{"ParseComplete", "ErrorResponse 22012", "ReadyForQuery I"}},
	}
	for _, s := range steps {
		if got := c.exchange(s.msgs...); !slices.Equal(got, s.want) {
			t.Errorf("%s: got\n%s\nwant\n%s", s.what, strings.Join(got, "\n"), strings.Join(s.want, "\n"))
		}
	}
	direct := directConn(t, tn.db)
	if got := queryStrings(t, direct, "SELECT memo FROM acme.ledger ORDER BY id"); !slices.Equal(got, []string{"kept"}) {
		t.Fatalf("acme.ledger holds %q, want only kept", got)
	}
	if got := tableColumns(t, direct, "acme", "invoice"); slices.Contains(got, "note text") {
		t.Fatalf("the skipped add_field ran: acme.invoice has %q", got)
	}
	if got := c.query("SELECT 'after'"); !slices.Equal(got, []string{"after"}) {
		t.Fatalf("the session answered %q", got)
	}
}
