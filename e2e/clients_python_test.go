package e2e

import (
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// The Python interpreters tried, in order: the first that imports a
// client's module runs it. Debian's packages (python3-psycopg,
// python3-psycopg2, python3-sqlalchemy, python3-django) install into
// /usr/bin/python3, which another python3 may shadow on PATH.
var pythons = []string{"python3", "/usr/bin/python3"}

// python returns an interpreter that imports every module of modules, or
// skips t.
func python(t testing.TB, modules ...string) string {
	t.Helper()
	script := "import " + modules[0]
	for _, m := range modules[1:] {
		script += ", " + m
	}
	for _, py := range pythons {
		path, err := exec.LookPath(py)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", script).Run() == nil {
			return path
		}
	}
	t.Skipf("no Python interpreter of %q imports %v (Debian: apt-get install python3-psycopg python3-psycopg2 python3-sqlalchemy python3-django)", pythons, modules)
	return ""
}

// runPython runs script of testdata/clients/python with interpreter py.
func runPython(t testing.TB, py string, env []string, script string, args ...string) []clientStep {
	t.Helper()
	return runClient(t, filepath.Join(clientsDir, "python"), env, py, append([]string{script}, args...)...)
}

func TestClientsPsycopg(t *testing.T)  { pythonFlow(t, "with_psycopg.py", "psycopg") }
func TestClientsPsycopg2(t *testing.T) { pythonFlow(t, "with_psycopg2.py", "psycopg2") }
func TestClientsSQLAlchemy(t *testing.T) {
	pythonFlow(t, "with_sqlalchemy.py", "sqlalchemy", "psycopg2")
}
func TestClientsDjango(t *testing.T) { pythonFlow(t, "with_django.py", "django", "psycopg2") }

// pythonFlow runs script, with a Python that imports modules, through the
// proxy: the common client flow, then a migrate command inside a
// transaction, which must get 25001.
func pythonFlow(t *testing.T, script string, modules ...string) {
	py := python(t, modules...)
	tn, p := clientTenants(t)
	got := runPython(t, py, clientEnv(t, p, tn), script)
	wantSteps(t, got, append(clientFlow(), errorStep("in_transaction", "25001"))...)
}

// TestClientsPsycopgPipeline sends statements in psycopg 3's pipeline mode,
// which sends them all before one Sync. As in PostgreSQL, an error ends
// the pipeline's implicit transaction: what came before it is rolled back,
// what comes after it is skipped, whether the error is PostgreSQL's or the
// proxy's own (a failing migrate command, a refused SET ROLE).
func TestClientsPsycopgPipeline(t *testing.T) {
	py := python(t, "psycopg")
	tn, p := clientTenants(t)
	direct := directConn(t, tn.db)
	org := pgx.Identifier{clientOrg}.Sanitize()
	if _, err := direct.Exec(testContext(t), "CREATE TABLE "+org+".pipeline_t (v int); GRANT ALL ON "+org+".pipeline_t TO "+org); err != nil {
		t.Fatal(err)
	}
	outcome := func(name, code string, kept int) clientStep {
		var errCode any
		if code != "" {
			errCode = code
		}
		return step(name, map[string]any{"error": errCode, "kept": kept, "m1": false})
	}
	// PostgreSQL's own behaviour, for the cases it can run.
	plain := []clientStep{
		outcome("insert_insert", "", 2),
		outcome("insert_error", "22012", 0),
		outcome("error_insert", "22012", 0),
	}
	names := func(steps []clientStep) []string {
		var n []string
		for _, s := range steps {
			n = append(n, s.Step)
		}
		return n
	}
	env := clientEnv(t, p, tn)
	t.Run("direct", func(t *testing.T) {
		// libpq reads no '+' as a space in a URL.
		options := strings.ReplaceAll(url.QueryEscape("-c search_path="+org), "+", "%20")
		directEnv := append(slices.Clone(env), "DATABASE_URL="+cluster.DSN("postgres", tn.db)+"&options="+options)
		wantSteps(t, runPython(t, py, directEnv, "psycopg_pipeline.py", names(plain)...), plain...)
	})
	t.Run("proxy", func(t *testing.T) {
		want := append(slices.Clone(plain),
			outcome("insert_failing_migrate", "42P01", 0),
			outcome("insert_set_role", "42501", 0),
			outcome("error_migrate", "22012", 0),
		)
		got := runPython(t, py, env, "psycopg_pipeline.py", names(want)...)
		wantSteps(t, got, want...)
		if got := queryStrings(t, direct, "SELECT operation FROM pgmigrate.history WHERE model = 'm1'"); len(got) > 0 {
			t.Errorf("the engine ran %q on model m1, sent after an error in the pipeline", got)
		}
	})
}
