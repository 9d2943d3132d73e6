package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestPsqlQuery(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	out := psql(t, p.url(scramUser, "", "acme"), userPassword, "-At",
		"-c", "SELECT current_schema(), session_user, current_user",
		"-c", "SELECT g * 10 FROM generate_series(1, 3) g")
	want := "acme|" + scramUser + "|acme\n10\n20\n30\n"
	if out != want {
		t.Fatalf("psql printed %q, want %q", out, want)
	}
}

func TestPsqlCopy(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	dir := t.TempDir()
	in, out, script := filepath.Join(dir, "in.csv"), filepath.Join(dir, "out.csv"), filepath.Join(dir, "copy.sql")

	// Enough rows to span many CopyData messages, with fields that need
	// quoting and a NULL, in the form COPY writes them back.
	var data strings.Builder
	for i := range 10_000 {
		fmt.Fprintf(&data, "%d,\"row %d, \"\"quoted\"\"\"\n", i, i)
	}
	data.WriteString("10000,\n")
	writeFile(t, in, data.String())
	writeFile(t, script, fmt.Sprintf(`CREATE TABLE t (id int, name text);
\copy t FROM '%s' WITH (FORMAT csv)
SELECT count(*), count(name) FROM t;
\copy t TO '%s' WITH (FORMAT csv)
`, in, out))

	got := psql(t, p.url(scramUser, "", "acme"), userPassword, "-At", "-v", "ON_ERROR_STOP=1", "-f", script)
	if want := "COPY 10001\n10001|10000\nCOPY 10001\n"; !strings.HasSuffix(got, want) {
		t.Fatalf("psql printed %q, want it to end with %q", got, want)
	}
	copied, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(copied) != data.String() {
		t.Fatalf("\\copy TO wrote %d bytes that differ from the %d bytes loaded", len(copied), data.Len())
	}
}

func TestPsqlCancel(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	cmd := psqlCommand(testContext(t), p.url(scramUser, "", "acme"), userPassword, "-c", sleep60)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, tn.db, sleep60)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Errorf("psql ended with %v, want exit status 1", err)
	}
	if !strings.Contains(out.String(), "canceling statement due to user request") {
		t.Fatalf("psql printed %q", out.String())
	}
}
