package e2e

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The client scripts of testdata/clients are the recipes of
// docs/clients.md. Each one prints a JSON line per step: the step's name
// and the rows it returned, which the tests compare with what the proxy
// should answer.

// clientsDir holds the client scripts.
var clientsDir = filepath.Join("testdata", "clients")

// clientScriptTimeout bounds one client script, runtime start included.
const clientScriptTimeout = 2 * time.Minute

// clientStep is one line a client script prints.
type clientStep struct {
	Step string           `json:"step"`
	Rows []map[string]any `json:"rows"`
}

// clientOrg is the org the client tests connect to.
const clientOrg = "acme-corp"

// clientEnv is the environment of a client script connecting through p, as
// scramUser, to clientOrg of tn: the environment of the test less its PG*
// variables, and the connection in the forms the scripts read.
func clientEnv(t testing.TB, p *proxyProc, tn tenants) []string {
	t.Helper()
	host, port, err := net.SplitHostPort(p.addr)
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	url := p.url(scramUser, userPassword, clientOrg)
	return append(env,
		"DATABASE_URL="+url,
		"ORG_OPTION_URL="+p.url(scramUser, userPassword, tn.db,
			"application_name", "recipes", "options", "-c pgmigrate.org="+clientOrg+" -c statement_timeout=5s"),
		"REFUSED_URL="+p.url(scramUser, userPassword, clientOrg, "options", "-c role=postgres"),
		"SQLALCHEMY_URL=postgresql+psycopg2"+strings.TrimPrefix(url, "postgres"),
		"ORG="+clientOrg,
		"PROXY_HOST="+host,
		"PROXY_PORT="+port,
		"DB_USER="+scramUser,
		"DB_PASSWORD="+userPassword,
		"PYTHONDONTWRITEBYTECODE=1",
	)
}

// runClient runs a client script, name and args, in dir with env and
// returns the steps it printed. It fails t if the script fails or prints
// anything but steps.
func runClient(t testing.TB, dir string, env []string, name string, args ...string) []clientStep {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), clientScriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	var steps []clientStep
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var s clientStep
		if err := json.Unmarshal([]byte(line), &s); err != nil || s.Step == "" {
			t.Fatalf("%s %s printed %q, not a step\nstderr:\n%s", name, strings.Join(args, " "), line, stderr.String())
		}
		steps = append(steps, s)
	}
	if stderr.Len() > 0 {
		t.Logf("%s %s printed on stderr:\n%s", name, strings.Join(args, " "), stderr.String())
	}
	return steps
}

// wantSteps fails t unless got holds the steps of want, in order, and no
// others. duration_ms, which varies, must be in each result row of a
// mutating command (a row with attempts) and is not compared.
func wantSteps(t testing.TB, got []clientStep, want ...clientStep) {
	t.Helper()
	for _, s := range got {
		for _, row := range s.Rows {
			if _, ok := row["attempts"]; !ok {
				continue
			}
			if _, ok := row["duration_ms"]; !ok {
				t.Errorf("step %s: result row without duration_ms: %v", s.Step, row)
			}
			delete(row, "duration_ms")
		}
	}
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = stepJSON(t, got[i])
		}
		if i < len(want) {
			w = stepJSON(t, want[i])
		}
		if g != w {
			t.Errorf("step %d:\n got %s\nwant %s", i+1, g, w)
		}
	}
}

func stepJSON(t testing.TB, s clientStep) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// step is a clientStep of rows.
func step(name string, rows ...map[string]any) clientStep {
	return clientStep{Step: name, Rows: rows}
}

// errorStep is the step a script prints for an error with SQLSTATE code.
func errorStep(name, code string) clientStep {
	return step(name, map[string]any{"code": code})
}

// clientFlow is what every client script prints first: the session's
// schema and roles, the result rows of create_model (literals), add_field
// and describe (parameters), the rows of an ordinary SELECT after two
// INSERTs, and the SQLSTATE of a failing command.
func clientFlow() []clientStep {
	mutation := func(field, statements string) map[string]any {
		return map[string]any{"status": "applied", "org": clientOrg, "model": "invoice", "field": field,
			"statements": statements, "attempts": 1}
	}
	describe := func(field, typ string, nullable bool, def any, pk bool) map[string]any {
		return map[string]any{"field": field, "type": typ, "nullable": nullable, "unique": false,
			"default": def, "references": nil, "primary_key": pk}
	}
	return []clientStep{
		step("session", map[string]any{"current_schema": clientOrg, "current_user": clientOrg, "session_user": scramUser}),
		step("create_model", mutation("", createModelSQL(clientOrg, "invoice", `"id" integer PRIMARY KEY, "title" varchar(200) NOT NULL`))),
		step("add_field", mutation("status", `ALTER TABLE "`+clientOrg+`"."invoice" ADD COLUMN "status" varchar(100) DEFAULT 'draft'`)),
		step("describe",
			describe("id", "integer", false, nil, true),
			describe("title", "character varying(200)", false, nil, false),
			describe("status", "character varying(100)", true, "'draft'", false)),
		step("rows",
			map[string]any{"id": 1, "title": "first", "status": "draft"},
			map[string]any{"id": 2, "title": "second", "status": "paid"}),
		errorStep("error", "42701"),
	}
}

// clientTenants starts a proxy serving a fresh tenant clientOrg.
func clientTenants(t testing.TB) (tenants, *proxyProc) {
	t.Helper()
	tn := newTenants(t, clientOrg)
	return tn, startProxy(t, tn.config(""))
}
