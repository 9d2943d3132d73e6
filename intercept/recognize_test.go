package intercept

import (
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

var maybeTests = []struct {
	sql  string
	want bool
}{
	{"CALL migrate.add_field('invoice', '{\"name\":\"amount\",\"type\":\"Float\"}')", true},
	{"call MIGRATE.x()", true},
	{"  /* c */ -- c\n CALL /*x*/ \"migrate\" . add_field()", true},
	{`CALL"migrate".x()`, true},
	{"/* outer /* inner */ still outer */CALL migrate.x()", true},
	{"\t\r\n\f\vCaLl\tmigrate\n.x()", true},
	{"CALL--c\nmigrate--c\n.x()", true},
	{"CALL migrate/**/.x()", true},
	{";; CALL migrate.x()", true},
	{"SELECT 1; CALL migrate.x()", true},
	{"SELECT ';', \";\", $$;$$, $a$;$a$ ; CALL migrate.x()", true},
	{`SELECT E'\';'; CALL migrate.x()`, true},
	{"SELECT 'a'\n'b'; CALL migrate.x()", true},
	{"SELECT 1 /* ; */; CALL migrate.x()", true},
	{"SELECT $0A$$;CALL migrate.x()", true}, // $0, then the alias A$$
	{`CALL U&"mi\0067rate".x()`, true},

	{"", false},
	{"CALL", false},
	{"CALL migrate", false},
	{"CALL migrate.", true}, // a syntax error for Parse to report
	{"SELECT 'CALL migrate.add_field(...)'", false},
	{"/* CALL migrate.add_field() */ SELECT 1", false},
	{"-- CALL migrate.x()\nSELECT 1", false},
	{"/* unterminated CALL migrate.x()", false},
	{"CALL other.proc()", false},
	{"CALL migrate_x.y()", false},
	{"CALL migratex.y()", false},
	{"CALL migrate$.x()", false},
	{"CALL migrateé.x()", false},
	{`CALL "Migrate".x()`, false},
	{`CALL "migrate"".x"()`, false},
	{"CALLmigrate.x()", false},
	{"CALL add_field()", false},
	{"EXPLAIN CALL migrate.x()", false},
	{"SELECT 'x;CALL migrate.x()'", false},
	{"SELECT $q$; CALL migrate.x()$q$", false},
	{`SELECT "a;CALL migrate.x()"`, false},
	{`SELECT E'\'; CALL migrate.x()'`, false},
	{"SELECT E'a'\n'\\'; CALL migrate.x()'", false},
	{"SELECT 1 -- ; CALL migrate.x()", false},
	{"SELECT * FROM migrate.models", false},
	{"CALL crm.migrate.list_models()", true},
	{`CALL "crm" . "migrate" . list_models()`, true},
	{`CALL crm.U&"\0061".x()`, true},
	{"CALL crm.other.list_models()", false},
	{"CALL crm.migrate", false},
	// With standard_conforming_strings off, the backslash escapes the
	// quote and the CALL is a statement of its own.
	{`SELECT '\''; CALL migrate.list_models(); --'`, true},

	// What pgjdbc sends for {call migrate.add_field(?, ?)} and
	// { call migrate.add_field(?,?) }.
	{"select * from migrate.add_field($1, $2) as result", true},
	{"select * from migrate.add_field($1,$2)  as result", true},
	{"SELECT * FROM migrate.describe('x')", true},
	{`SeLeCt*FrOm"migrate".x()`, true},
	{"select/**/*/**/from/**/migrate/**/./**/x/**/() r", true},
	{"select\n*--c\nfrom migrate . \"add_field\" (model => 'x')", true},
	{"SELECT 1; SELECT * FROM migrate.x()", true},
	{`SELECT * FROM U&"mi\0067rate".x()`, true},
	{`SELECT * FROM migrate.U&"x"()`, true},
	{"SELECT * FROM crm.migrate.x()", true},
	{"SELECT * FROM migrate.x.y()", true},
	// Texts that start like one but are more, for Parse to refuse.
	{"SELECT * FROM migrate.x() WHERE true", true},
	{"SELECT * FROM migrate.x(), pg_class", true},
	{"SELECT * FROM migrate.x() JOIN pg_class ON true", true},
	{"SELECT * FROM migrate.x() UNION SELECT * FROM pg_class", true},
	{"SELECT * FROM migrate.x.y", true},
	{"SELECT * FROM migrate.x", false},
	{"SELECT * FROM migrate.x AS y", false},
	{"SELECT * FROM migrate", false},
	{"SELECT * FROM crm.migrate.x", false},
	{"SELECT * FROM migrate_x.y()", false},
	{"SELECT * FROM other.x()", false},
	{"SELECT migrate.x()", false},
	{"SELECT 1 FROM migrate.x()", false},
	{"SELECT *, 1 FROM migrate.x()", false},
	{"SELECT r.* FROM migrate.x() r", false},
	{"SELECT ** FROM migrate.x()", false},
	{"SELECT ALL * FROM migrate.x()", false},
	{"SELECT DISTINCT * FROM migrate.x()", false},
	{"(SELECT * FROM migrate.x())", false},
	{"SELECTS * FROM migrate.x()", false},
	{"SELECT * FROMmigrate.x()", false},
	{"SELECT * FROM LATERAL migrate.x()", false},
	{"SELECT * FROM ROWS FROM (migrate.x())", false},
	{"SELECT * FROM (SELECT * FROM migrate.x()) s", false},
	{"SELECT * FROM pg_class WHERE EXISTS (SELECT * FROM migrate.x())", false},
	{"WITH w AS (SELECT 1) SELECT * FROM migrate.x()", false},
	{"EXPLAIN SELECT * FROM migrate.x()", false},
	{"SELECT 'SELECT * FROM migrate.x()'", false},
	{"-- SELECT * FROM migrate.x()\nSELECT 1", false},
}

func TestMaybe(t *testing.T) {
	for _, tt := range maybeTests {
		if got := Classify([]byte(tt.sql)) == Migrate; got != tt.want {
			t.Errorf("Classify(%q) == Migrate is %v, want %v", tt.sql, got, tt.want)
		}
		if !tt.want && callsMigrateProc(tt.sql) {
			t.Errorf("pg_query finds a migrate CALL in %q", tt.sql)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		sql  string
		want Kind
	}{
		{"SET ROLE globex", RoleChange},
		{"set role to globex", RoleChange},
		{"SET SESSION ROLE globex", RoleChange},
		{"SET LOCAL ROLE globex", RoleChange},
		{`SET "role" = 'globex'`, RoleChange},
		{`SET "ROLE" = 'globex'`, RoleChange},
		{"SET/**/role\n=globex", RoleChange},
		{"RESET ROLE", RoleChange},
		{"reset role;", RoleChange},
		{"SET SESSION AUTHORIZATION alice", RoleChange},
		{"SET LOCAL SESSION AUTHORIZATION alice", RoleChange},
		{"SET session_authorization = alice", RoleChange},
		{`SET "session_authorization" TO alice`, RoleChange},
		{"RESET SESSION AUTHORIZATION", RoleChange},
		{"reset session_authorization", RoleChange},
		{`SET U&"\0072ole" TO globex`, RoleChange},
		{"BEGIN; SET ROLE globex; SELECT 1", RoleChange},
		{`SELECT '\''; SET ROLE globex; --'`, RoleChange},
		{"SET roles = 1", Ordinary},
		{"SET rolex TO 1", Ordinary},
		{"SET search_path = x", Ordinary},
		{"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", Ordinary},
		{"RESET ALL", Ordinary},
		{"SELECT 'SET ROLE x'", Ordinary},
		{"-- SET ROLE x\nSELECT 1", Ordinary},
		{"settle", Ordinary},
		{"CREATE TABLE t (id int)", DDL},
		{"  /* c */ alter table t add column x int", DDL},
		{"DROP TABLE t", DDL},
		{"COMMENT ON TABLE t IS 'x'", DDL},
		{"GRANT SELECT ON t TO PUBLIC", DDL},
		{"REVOKE ALL ON t FROM x", DDL},
		{"SECURITY LABEL ON TABLE t IS 'x'", DDL},
		{"IMPORT FOREIGN SCHEMA s FROM SERVER x INTO y", DDL},
		{"SELECT 1; DROP TABLE t", DDL},
		{"created", Ordinary},
		{"SELECT 'DROP TABLE t'", Ordinary},
		{"DROP TABLE t; SET ROLE x", RoleChange},
		// In SJIS (and BIG5, GBK, UHC, JOHAB, GB18030) 0x95 0x5c is one
		// character: the quote after it ends the string.
		{"SELECT E'\x95\x5c'; SET ROLE globex; --'", RoleChange},
		{"SELECT '\x95\x5c'; SET ROLE globex; --'", RoleChange},
		{"SELECT E'\x95\x5c'; CALL migrate.list_models(); --'", Migrate},
		{"SELECT E'\x81\x30\x81\x5c'; SET ROLE globex; --'", RoleChange},
		{"SELECT E'\\\x95\x5c'; SET ROLE globex; --'", RoleChange},
		{"SELECT E'\xe8\xa1\xa8\\''; SELECT 1", Ordinary},
		// Outside strings too: an identifier, a dollar-quote tag.
		{"SELECT 1 AS \x95\x5c$t$; SET ROLE globex; SELECT 1 AS a$t$", RoleChange},
		{"SELECT $\x95\x5c$'$\x95\x5c$; SET ROLE globex; SELECT ", RoleChange},
		{"SET ROLE x; CALL migrate.list_models()", Migrate},
	}
	for _, tt := range tests {
		if got := Classify([]byte(tt.sql)); got != tt.want {
			t.Errorf("Classify(%q) = %v, want %v", tt.sql, got, tt.want)
		}
	}
}

// callsMigrateProc reports whether pg_query parses sql into statements of
// which one calls a procedure migrate.<proc>: a CALL, or a SELECT * FROM
// migrate.<proc>(...) and nothing more that starts with the tokens SELECT,
// * and FROM as PostgreSQL's lexer reads them.
func callsMigrateProc(sql string) bool {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return false
	}
	for _, raw := range tree.Stmts {
		call := raw.Stmt.GetCallStmt().GetFunccall()
		if sel := raw.Stmt.GetSelectStmt(); sel != nil && startsSelectStarFrom(sql[raw.StmtLocation:]) {
			call = selectedCall(sel)
		}
		if call, err := migrateProcedure(call); call != nil || err != nil {
			return true
		}
	}
	return false
}

// startsSelectStarFrom reports whether the first tokens of sql, comments
// aside, are SELECT, * and FROM.
func startsSelectStarFrom(sql string) bool {
	scan, err := pg_query.Scan(sql)
	if err != nil {
		return false
	}
	want := []pg_query.Token{pg_query.Token_SELECT, pg_query.Token_ASCII_42, pg_query.Token_FROM}
	for _, tok := range scan.Tokens {
		switch {
		case len(want) == 0:
			return true
		case tok.Token == pg_query.Token_SQL_COMMENT || tok.Token == pg_query.Token_C_COMMENT:
		case tok.Token != want[0]:
			return false
		default:
			want = want[1:]
		}
	}
	return len(want) == 0
}

func FuzzMaybe(f *testing.F) {
	for _, tt := range maybeTests {
		f.Add(tt.sql)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		// A migrate command after the text probes how Maybe finds the
		// statements' ends in all the text the fuzzer makes.
		for _, s := range []string{sql, sql + "\n;CALL migrate.x()"} {
			if Classify([]byte(s)) != Migrate && callsMigrateProc(s) {
				t.Errorf("Classify(%q) = %v, but it is a migrate CALL", s, Classify([]byte(s)))
			}
		}
	})
}

// ordinaryQueries are what the proxy relays all day.
var ordinaryQueries = []string{
	"SELECT i.id, i.number, c.name, sum(l.amount) AS total FROM invoice i JOIN customer c ON c.id = i.customer_id " +
		"LEFT JOIN invoice_line l ON l.invoice_id = i.id WHERE i.created_at > $1 GROUP BY i.id, c.name ORDER BY i.id LIMIT 50",
	"INSERT INTO invoice (customer_id, number, amount, note) VALUES ($1, $2, $3, 'paid; thanks') RETURNING id, created_at",
	"UPDATE invoice SET amount = amount * 1.2, updated_at = now() WHERE id = $1 AND status <> 'void'",
	"DELETE FROM session WHERE expires_at < now()",
	"BEGIN",
	"COMMIT;",
	"-- from the pool\nSET application_name = 'billing'",
	"select 1",
	"/* controller='invoices',action='index',traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' */ " +
		"SELECT invoice.* FROM invoice WHERE invoice.customer_id IN (" + strings.Repeat("$1, ", 200) + "$2) ORDER BY invoice.id",
	"WITH recent AS (SELECT * FROM event WHERE at > now() - interval '1 day') SELECT kind, count(*) FROM recent GROUP BY kind",
}

func TestMaybeAllocs(t *testing.T) {
	queries := append(ordinaryQueries, "SELECT 1; CALL migrate.add_field('invoice', '{}')", "select * from migrate.add_field($1, $2) as result")
	for _, q := range queries {
		sql := []byte(q)
		if n := testing.AllocsPerRun(10, func() { Classify(sql) }); n != 0 {
			t.Errorf("Classify(%.40q...) allocates %v times", q, n)
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	queries := make([][]byte, len(ordinaryQueries))
	for i, q := range ordinaryQueries {
		queries[i] = []byte(q)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if Classify(queries[i%len(queries)]) != Ordinary {
			b.Fatal("an ordinary query taken for something else")
		}
	}
}

// BenchmarkClassifyWorstCase classifies a 4 KiB text that every reading
// must go through to its end: backslashes after high bytes, a semicolon in
// every few bytes. It is what the longest text checked on the relay loop
// (proxy's loopTextLimit) costs there at worst.
func BenchmarkClassifyWorstCase(b *testing.B) {
	sql := []byte(strings.Repeat("a\\\xe9\\;", 4<<10/5))
	b.SetBytes(int64(len(sql)))
	b.ReportAllocs()
	for b.Loop() {
		if Classify(sql) != Ordinary {
			b.Fatal("taken for something else")
		}
	}
}
