package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// pgTool runs a PostgreSQL client program (pg_dump, pg_restore) with args,
// without the PG* variables of the environment but PGPASSWORD=password,
// and returns what it printed and its error.
func pgTool(t testing.TB, password, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed", name)
	}
	ctx, cancel := context.WithTimeout(t.Context(), clientScriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=10")
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// pgDump runs pg_dump with args and returns the dump it printed, failing t
// if it fails.
func pgDump(t testing.TB, args ...string) string {
	t.Helper()
	out, stderr, err := pgTool(t, userPassword, "pg_dump", args...)
	if err != nil {
		t.Fatalf("pg_dump %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// dumpKey matches the lines of a plain dump that vary from dump to dump:
// psql's \restrict and \unrestrict with their random key.
var dumpKey = regexp.MustCompile(`(?m)^\\(un)?restrict \S+$`)

// clientsDumpSetup makes, through the proxy, the tenant's table invoice
// with two rows.
func clientsDumpSetup(t testing.TB, url string) {
	t.Helper()
	psql(t, url, userPassword, "-q", "-v", "ON_ERROR_STOP=1",
		"-c", `CALL migrate.create_model('invoice', '[{"name":"id","type":"Int"},{"name":"title","type":"String","maxLength":200,"nullable":false}]')`,
		"-c", `CALL migrate.add_field('invoice', '{"name":"status","type":"String","default":"draft"}')`,
		"-c", `INSERT INTO invoice (id, title) VALUES (1, 'first')`,
		"-c", `INSERT INTO invoice (id, title, status) VALUES (2, 'second', 'paid')`)
}

// TestClientsPgDump dumps one tenant through the proxy with pg_dump -n.
func TestClientsPgDump(t *testing.T) {
	const solo = "dumpsolo" // a tenant with a database of its own
	tn := newTenants(t, clientOrg)
	soloDB := cluster.CreateDatabase(t)
	p := startProxy(t, fmt.Sprintf(`upstreams:
  - name: main
    dsn: %s
tenants:
  - org: %s
  - org: %s
    database: %q
    schema: public
policy:
  admins: [postgres]
`, cluster.DSN("postgres", tn.db), clientOrg, solo, soloDB))
	url := p.url(scramUser, "", clientOrg)
	clientsDumpSetup(t, url)

	// Parts of the dump, written for a schema acme: qualified puts in the
	// dumped schema's name.
	const (
		create = "CREATE TABLE acme.invoice (\n    id integer NOT NULL,\n    title character varying(200) NOT NULL,\n" +
			"    status character varying(100) DEFAULT 'draft'::character varying\n);\n"
		data  = "COPY acme.invoice (id, title, status) FROM stdin;\n1\tfirst\tdraft\n2\tsecond\tpaid\n\\.\n"
		pkey  = "ALTER TABLE ONLY acme.invoice\n    ADD CONSTRAINT invoice_pkey PRIMARY KEY (id);\n"
		grant = "GRANT SELECT,INSERT,REFERENCES,DELETE,TRUNCATE,UPDATE ON TABLE acme.invoice TO "
	)
	qualified := func(s, schema string) string { return strings.ReplaceAll(s, "acme.", schema+".") }
	org := `"` + clientOrg + `"`
	dump := pgDump(t, "-n", clientOrg, url)
	t.Run("schema", func(t *testing.T) {
		for _, want := range []string{"CREATE SCHEMA " + org + ";\n",
			qualified(create, org), qualified(data, org), qualified(pkey, org), qualified(grant, org) + org + ";\n"} {
			if !strings.Contains(dump, want) {
				t.Errorf("pg_dump -n %s printed no\n%s\nin\n%s", clientOrg, want, dump)
			}
		}
		if strings.Contains(dump, "pgmigrate.") {
			t.Errorf("pg_dump -n %s dumped the engine's schema:\n%s", clientOrg, dump)
		}
	})

	t.Run("org in options", func(t *testing.T) {
		byOption := pgDump(t, "-n", clientOrg, p.url(scramUser, "", tn.db, "options", "-c pgmigrate.org="+clientOrg))
		if got, want := dumpKey.ReplaceAllString(byOption, ""), dumpKey.ReplaceAllString(dump, ""); got != want {
			t.Errorf("with the org in options pg_dump printed\n%s\nwant\n%s", got, want)
		}
	})

	t.Run("custom format", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), clientOrg+".dump")
		pgDump(t, "-Fc", "-n", clientOrg, "-f", file, url)
		list, stderr, err := pgTool(t, "", "pg_restore", "-l", file)
		if err != nil {
			t.Fatalf("pg_restore -l: %v\n%s", err, stderr)
		}
		for _, want := range []string{" TABLE " + clientOrg + " invoice ", " TABLE DATA " + clientOrg + " invoice ", " CONSTRAINT " + clientOrg + " invoice invoice_pkey "} {
			if !strings.Contains(list, want) {
				t.Errorf("pg_restore -l lists no %q:\n%s", want, list)
			}
		}
	})

	// Without -n pg_dump reads every schema it sees, the engine's too,
	// which the tenant role may not.
	t.Run("without -n", func(t *testing.T) {
		out, stderr, err := pgTool(t, userPassword, "pg_dump", url)
		if err == nil || !strings.Contains(stderr, "permission denied for schema pgmigrate") {
			t.Fatalf("pg_dump without -n: %v\n%s\nstdout:\n%s", err, stderr, out)
		}
	})

	t.Run("database per tenant", func(t *testing.T) {
		if err := cluster.Exec(context.Background(), soloDB, "GRANT "+solo+" TO "+scramUser); err != nil {
			t.Fatal(err)
		}
		soloURL := p.url(scramUser, "", solo)
		clientsDumpSetup(t, soloURL)
		dump := pgDump(t, "-n", "public", soloURL)
		for _, want := range []string{
			qualified(create, "public"), qualified(data, "public"), qualified(pkey, "public"),
		} {
			if !strings.Contains(dump, want) {
				t.Errorf("pg_dump -n public printed no\n%s\nin\n%s", want, dump)
			}
		}
	})
}
