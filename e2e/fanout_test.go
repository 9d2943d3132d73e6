package e2e

import (
	"context"
	"strings"
	"testing"
)

// TestMigrateAllTenants runs one schema change across every tenant from an
// admin session: a row per tenant, a NOTICE per tenant, and a failing
// tenant reported while the others are migrated.
func TestMigrateAllTenants(t *testing.T) {
	tn := newTenants(t, "a1", "b2", "c3")
	p := startProxy(t, tn.config(""))
	// b2 has an invoice of another spec, made by the superuser, who is the
	// engine's role: the engine owns it, and create_model conflicts with it.
	if err := cluster.Exec(testContext(t), tn.db, `CREATE TABLE "b2".invoice (id text)`); err != nil {
		t.Fatal(err)
	}
	admin := p.url("postgres", "", tn.db)
	stdout, _, stderr := psqlScript(t, admin,
		`CALL migrate.create_model('invoice', '[{"name":"id","type":"Int"}]', org => '*');`)
	want := []string{
		"applied|a1|invoice||" + createModelSQL("a1", "invoice", `"id" integer PRIMARY KEY`) + "|1|ms",
		`failed|b2|invoice||42P07: model "invoice" already exists with another spec|||`,
		"applied|c3|invoice||" + createModelSQL("c3", "invoice", `"id" integer PRIMARY KEY`) + "|1|ms",
	}
	// Rows are separated by "\n", and so are the statements of a row.
	if got := strings.TrimSpace(strings.ReplaceAll(stdout, "||\n", "|||\n")); got != strings.Join(want, "\n") {
		t.Errorf("rows:\n%s\nwant:\n%s", stdout, strings.Join(want, "\n"))
	}
	for _, note := range []string{"NOTICE:  00000: a1: applied", "NOTICE:  00000: b2: failed", "NOTICE:  00000: c3: applied"} {
		if !strings.Contains(stderr, note) {
			t.Errorf("psql did not show %q:\n%s", note, stderr)
		}
	}
	_, codes, _ := psqlScript(t, p.url("postgres", "", "a1"),
		`CALL migrate.add_field('invoice', '{"name":"x","type":"Int"}', org => '*');`)
	if strings.Join(codes, ",") != "42501" {
		t.Errorf("org => '*' from a tenant session: errors %v, want 42501", codes)
	}
}

// TestMigratorsByRole lets members of a role run mutating commands.
func TestMigratorsByRole(t *testing.T) {
	tn := newTenants(t, "acme")
	cluster.Exec(testContext(t), "postgres", "DROP ROLE IF EXISTS schema_admins; CREATE ROLE schema_admins")
	t.Cleanup(func() {
		// The test's context is done by the time cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := cluster.Exec(ctx, "postgres", "DROP ROLE IF EXISTS schema_admins"); err != nil {
			t.Error(err)
		}
	})
	p := startProxy(t, strings.Replace(tn.config(""), "policy:\n", "policy:\n  migrators: [\"role:schema_admins\"]\n", 1))
	create := `CALL migrate.create_model('invoice', '[{"name":"id","type":"Int"}]');`
	user := p.url(scramUser, userPassword, "acme")
	if _, codes, _ := psqlScript(t, user, create); strings.Join(codes, ",") != "42501" {
		t.Fatalf("non-member: errors %v, want 42501", codes)
	}
	cluster.Exec(testContext(t), "postgres", "GRANT schema_admins TO "+scramUser)
	if stdout, codes, _ := psqlScript(t, user, create); len(codes) > 0 || !strings.HasPrefix(stdout, "applied|") {
		t.Fatalf("member: %q, errors %v", stdout, codes)
	}
}
