package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The pgjdbc tests compile and run testdata/jdbc/MigrateJdbc.java, the
// recipes of the pgjdbc section of docs/clients.md, with a JDK's javac and
// java and the driver of Debian's libpostgresql-jdbc-java, which
// scripts/lib.sh installs. Without them they skip.

// pgjdbcJar is where libpostgresql-jdbc-java installs the driver.
const pgjdbcJar = "/usr/share/java/postgresql.jar"

// jdbcTimeout bounds the compilation and the run of one scenario.
const jdbcTimeout = 2 * time.Minute

// jdbcStep is a line MigrateJdbc prints: the rows of a step (each value as
// text, NULL as nil), its update count, or the SQLSTATE of its error.
type jdbcStep struct {
	Step  string           `json:"step"`
	Rows  []map[string]any `json:"rows,omitempty"`
	Count *int             `json:"count,omitempty"`
	Error string           `json:"error,omitempty"`
}

// runJDBC runs a scenario of MigrateJdbc through p, as scramUser in org
// acme, and returns the steps it printed.
func runJDBC(t testing.TB, p *proxyProc, scenario string) []jdbcStep {
	t.Helper()
	javac, errJavac := exec.LookPath("javac")
	java, errJava := exec.LookPath("java")
	_, errJar := os.Stat(pgjdbcJar)
	if err := cmp.Or(errJavac, errJava, errJar); err != nil {
		t.Skipf("the pgjdbc tests need a JDK and the driver (Debian: apt-get install -y openjdk-17-jdk-headless libpostgresql-jdbc-java): %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), jdbcTimeout)
	defer cancel()
	classes := t.TempDir()
	compile := exec.CommandContext(ctx, javac, "-cp", pgjdbcJar, "-d", classes, filepath.Join("testdata", "jdbc", "MigrateJdbc.java"))
	if out, err := compile.CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	url := "jdbc:postgresql://" + p.addr + "/acme"
	run := exec.CommandContext(ctx, java, "-cp", pgjdbcJar+string(os.PathListSeparator)+classes,
		"MigrateJdbc", url, scramUser, userPassword, scenario)
	var stderr strings.Builder
	run.Stderr = &stderr
	out, err := run.Output()
	if err != nil {
		t.Fatalf("MigrateJdbc %s: %v\nstdout:\n%s\nstderr:\n%s", scenario, err, out, stderr.String())
	}
	var steps []jdbcStep
	for line := range strings.Lines(string(out)) {
		var s jdbcStep
		if err := json.Unmarshal([]byte(line), &s); err != nil || s.Step == "" {
			t.Fatalf("MigrateJdbc %s printed %q, not a step\nstderr:\n%s", scenario, line, stderr.String())
		}
		steps = append(steps, s)
	}
	return steps
}

// wantJDBCSteps fails t unless got is want, step by step. A row with a
// status, the result row of a mutating command, must have a duration_ms,
// which is not compared.
func wantJDBCSteps(t testing.TB, got, want []jdbcStep) {
	t.Helper()
	for _, s := range got {
		for _, row := range s.Rows {
			if row["status"] == nil {
				continue
			}
			if d, ok := row["duration_ms"].(string); !ok || d == "" || strings.Trim(d, "0123456789") != "" {
				t.Errorf("step %s: duration_ms of %v is not a number of milliseconds", s.Step, row)
			}
			delete(row, "duration_ms")
		}
	}
	for i := range max(len(got), len(want)) {
		var g, w []byte
		if i < len(got) {
			g, _ = json.Marshal(got[i])
		}
		if i < len(want) {
			w, _ = json.Marshal(want[i])
		}
		if string(g) != string(w) {
			t.Errorf("step %d:\n got %s\nwant %s", i+1, g, w)
		}
	}
}

// jdbcRows is a step that returns rows.
func jdbcRows(step string, rows ...map[string]any) jdbcStep {
	return jdbcStep{Step: step, Rows: rows}
}

// jdbcError is a step that fails with SQLSTATE code.
func jdbcError(step, code string) jdbcStep {
	return jdbcStep{Step: step, Error: code}
}

// jdbcResult is the result row of a mutating command on invoice of acme.
func jdbcResult(status, field, statements string, attempts int) map[string]any {
	return map[string]any{"status": status, "org": "acme", "model": "invoice", "field": field,
		"statements": statements, "attempts": strconv.Itoa(attempts)}
}

// jdbcDescribed is the row describe returns for a field that is not unique
// and references nothing; def is its default, nil for none.
func jdbcDescribed(field, typ, nullable string, def any, primaryKey string) map[string]any {
	return map[string]any{"field": field, "type": typ, "nullable": nullable, "unique": "f", "default": def,
		"references": nil, "primary_key": primaryKey}
}

// invoiceJDBC is what describe returns for createInvoice, as pgjdbc reads
// it.
var invoiceJDBC = []map[string]any{
	jdbcDescribed("id", "integer", "f", nil, "t"),
	jdbcDescribed("title", "character varying(200)", "f", nil, "f"),
}

// TestJDBCCommands runs migrate commands with pgjdbc in autocommit mode:
// the escape syntax {call migrate.<proc>(?, ...)}, which pgjdbc sends as
// SELECT * FROM migrate.<proc>($1, ...) AS result, through
// executeQuery, execute and executeUpdate; a plain CALL in a
// PreparedStatement and a Statement; and the forms that do not work.
func TestJDBCCommands(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	got := runJDBC(t, p, "commands")

	addText := func(name string) string { return `ALTER TABLE "acme"."invoice" ADD COLUMN "` + name + `" text` }
	status := jdbcDescribed("status", "character varying(100)", "t", "'draft'", "f")
	text := func(name string) map[string]any { return jdbcDescribed(name, "text", "t", nil, "f") }
	wantJDBCSteps(t, got, []jdbcStep{
		jdbcRows("escape_create_model", jdbcResult("applied", "", createInvoiceSQL, 1)),
		jdbcRows("escape_add_field", map[string]any{"status": "applied",
			"statements": `ALTER TABLE "acme"."invoice" ADD COLUMN "status" varchar(100) DEFAULT 'draft'`, "attempts": "1"}),
		jdbcRows("escape_dry_run", jdbcResult("planned", "priority", `ALTER TABLE "acme"."invoice" ADD COLUMN "priority" integer`, 0)),
		jdbcRows("escape_call_mode", map[string]any{"model": "invoice"}),
		jdbcRows("prepared_call", append(invoiceJDBC, status)...),
		jdbcRows("escape_execute", jdbcResult("applied", "note", addText("note"), 1)),
		{Step: "escape_execute_update", Count: new(0)},
		jdbcError("prepared_execute_update", "0100E"),
		jdbcError("statement_execute_update", "0100E"),
		jdbcRows("statement_describe", append(invoiceJDBC, status, text("note"), text("memo"),
			jdbcDescribed("code", "integer", "t", nil, "f"), text("ref"))...),
		jdbcRows("select_form", map[string]any{"model": "invoice"}),
		jdbcError("select_more", "0A000"),
		jdbcError("select_elsewhere", "3F000"),
		jdbcError("prepared_escape", "42601"),
		jdbcError("escape_out_parameter", "42601"),
	})
	// Every executeUpdate ran its command, whether it threw or not.
	wantColumns(t, directConn(t, tn.db), "acme", "invoice", "id integer", "title character varying(200)",
		"status character varying(100)", "note text", "memo text", "code integer", "ref text")
}

// TestJDBCAutocommitOff runs migrate commands with autocommit off, where
// pgjdbc opens a transaction block with BEGIN before the first statement:
// each is refused with 25001, as in any transaction block, and after the
// rollback nothing has changed.
func TestJDBCAutocommitOff(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	got := runJDBC(t, p, "transaction")
	wantJDBCSteps(t, got, []jdbcStep{
		jdbcRows("create_model", jdbcResult("applied", "", createInvoiceSQL, 1)),
		jdbcError("after_insert", "25001"),
		jdbcError("first_in_transaction", "25001"),
		jdbcRows("describe", invoiceJDBC...),
		jdbcRows("count", map[string]any{"count": "0"}),
	})
	wantColumns(t, directConn(t, tn.db), "acme", "invoice", "id integer", "title character varying(200)")
}
