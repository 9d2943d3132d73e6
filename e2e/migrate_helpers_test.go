package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// The model most migrate tests start from: id is its primary key.
const (
	invoiceFields = `[{"name":"id","type":"Int"},{"name":"title","type":"String","maxLength":200,"nullable":false}]`
	createInvoice = `CALL migrate.create_model('invoice', '` + invoiceFields + `')`
	addStatus     = `CALL migrate.add_field('invoice', '{"name":"status","type":"String","default":"draft"}')`
)

// createInvoiceSQL is what createInvoice runs in schema acme.
var createInvoiceSQL = createModelSQL("acme", "invoice", `"id" integer PRIMARY KEY, "title" varchar(200) NOT NULL`)

// createModelSQL is what create_model runs (statements separated by
// ";\n") to make table with columns in the schema of org: the table, which
// the engine owns, and the grant that lets the tenant role, named like the
// org, use it.
func createModelSQL(org, table, columns string) string {
	return fmt.Sprintf(`CREATE TABLE "%[1]s"."%[2]s" (%[3]s);`+"\n"+
		`GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES ON TABLE "%[1]s"."%[2]s" TO "%[1]s"`, org, table, columns)
}

// psqlFlags make psql print rows unaligned with '|' between fields, and
// neither headers nor command tags.
var psqlFlags = []string{"-q", "-At", "-F", "|"}

// durationMS is the duration_ms column ending the row of a mutating
// command, which varies from run to run.
var durationMS = regexp.MustCompile(`(?m)\|\d+$`)

// psqlCalls runs commands with psql as postgres, one Query each in one
// session, and returns what it printed with every duration_ms replaced by
// "ms".
func psqlCalls(t testing.TB, connString string, commands ...string) string {
	t.Helper()
	args := slices.Clone(psqlFlags)
	for _, c := range commands {
		args = append(args, "-c", c)
	}
	return durationMS.ReplaceAllString(psql(t, connString, "", args...), "|ms")
}

// psqlErrorCode finds the SQLSTATE in the errors psql prints with
// VERBOSITY=verbose.
var psqlErrorCode = regexp.MustCompile(`(?m)^psql:[^\n]*: ERROR:  ([0-9A-Z]{5}): `)

// psqlScript runs script with psql as postgres in one session that goes on
// after errors, which psql prints with their SQLSTATE. It returns what psql
// printed as psqlCalls does, the SQLSTATEs of the errors in order, and
// psql's standard error.
func psqlScript(t testing.TB, connString, script string) (stdout string, codes []string, stderr string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "script.sql")
	writeFile(t, file, script)
	args := slices.Concat(psqlFlags, []string{"-v", "ON_ERROR_STOP=0", "-v", "VERBOSITY=verbose", "-f", file})
	cmd := psqlCommand(testContext(t), connString, "", args...)
	var errOut strings.Builder
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("psql -f script: %v\n%s", err, errOut.String())
	}
	for _, m := range psqlErrorCode.FindAllStringSubmatch(errOut.String(), -1) {
		codes = append(codes, m[1])
	}
	return durationMS.ReplaceAllString(string(out), "|ms"), codes, errOut.String()
}

// migrateConn opens a pgx connection through p that sends every query with
// the simple protocol, the one migrate commands are answered in.
func migrateConn(t testing.TB, p *proxyProc, user, password, database string) *pgx.Conn {
	t.Helper()
	return p.connect(t, user, password, database, "default_query_exec_mode", "simple_protocol")
}

// mustExec runs sql on conn and fails t if it does not succeed.
func mustExec(t testing.TB, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(testContext(t), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// wantExecError runs sql on conn and fails t unless it fails with SQLSTATE
// code.
func wantExecError(t testing.TB, conn *pgx.Conn, sql, code string) {
	t.Helper()
	_, err := conn.Exec(testContext(t), sql)
	if err == nil {
		t.Fatalf("%s succeeded, want SQLSTATE %s", sql, code)
	}
	wantPgError(t, err, code)
}

// queryStrings runs sql with args on conn and returns the first column of
// its rows, which must be text.
func queryStrings(t testing.TB, conn *pgx.Conn, sql string, args ...any) []string {
	t.Helper()
	rows, err := conn.Query(testContext(t), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var first string
		dest := make([]any, len(r.FieldDescriptions()))
		dest[0] = &first
		err := r.Scan(dest...)
		return first, err
	})
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return got
}

// wantColumns fails t unless schema.table has exactly the columns want
// ("name type", in order); none means the table does not exist.
func wantColumns(t testing.TB, conn *pgx.Conn, schema, table string, want ...string) {
	t.Helper()
	if got := tableColumns(t, conn, schema, table); !slices.Equal(got, want) {
		t.Fatalf("%s.%s has columns %q, want %q", schema, table, got, want)
	}
}

// tableColumns lists the columns of schema.table ("name type", in order)
// as the cluster has them; none if the table does not exist.
func tableColumns(t testing.TB, conn *pgx.Conn, schema, table string) []string {
	t.Helper()
	return queryStrings(t, conn, `
SELECT attname || ' ' || format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute
WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped
ORDER BY attnum`, pgx.Identifier{schema, table}.Sanitize())
}

// response is what the backend answered one simple Query with.
type response struct {
	rows   [][]string // NULL reads as ""
	tags   []string   // the CommandComplete tags
	code   string     // the SQLSTATE of an ErrorResponse, if any
	status byte       // the transaction status of the ReadyForQuery
}

// response reads the messages answering one simple Query, up to its
// ReadyForQuery.
func (c *rawConn) response() response {
	c.t.Helper()
	var r response
	for {
		switch msg := c.receive().(type) {
		case *pgproto3.DataRow:
			row := make([]string, len(msg.Values))
			for i, v := range msg.Values {
				row[i] = string(v)
			}
			r.rows = append(r.rows, row)
		case *pgproto3.CommandComplete:
			r.tags = append(r.tags, string(msg.CommandTag))
		case *pgproto3.ErrorResponse:
			r.code = msg.Code
		case *pgproto3.ReadyForQuery:
			r.status = msg.TxStatus
			return r
		}
	}
}
