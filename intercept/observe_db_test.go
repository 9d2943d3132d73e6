package intercept

import (
	"testing"
	"time"
)

// TestObserve: each command that runs is reported once, with its
// procedure, status and, for an error, SQLSTATE.
func TestObserve(t *testing.T) {
	f := newFixture(t)
	type observed struct{ proc, status, sqlstate string }
	var got []observed
	f.h.Observe = func(proc, status, sqlstate string, d time.Duration) {
		if d <= 0 {
			t.Errorf("%s %s: duration %v", proc, status, d)
		}
		got = append(got, observed{proc, status, sqlstate})
	}
	steps := []struct {
		sql  string
		want observed
	}{
		{`CALL migrate.create_model('invoice', '[{"name":"id","type":"Int"}]')`, observed{"create_model", "applied", ""}},
		{`CALL migrate.create_model('invoice', '[{"name":"id","type":"Int"}]')`, observed{"create_model", "unchanged", ""}},
		{`CALL migrate.add_field('invoice', '{"name":"note","type":"String"}', dry_run => true)`, observed{"add_field", "planned", ""}},
		{`CALL migrate.list_models()`, observed{"list_models", "ok", ""}},
		{`CALL migrate.add_field('nosuch', '{"name":"note","type":"String"}')`, observed{"add_field", "error", "42P01"}},
	}
	for _, s := range steps {
		got = nil
		f.query(t, s.sql)
		if len(got) != 1 || got[0] != s.want {
			t.Errorf("%s: observed %v, want %v", s.sql, got, s.want)
		}
	}
	got = nil
	f.query(t, `CALL migrate.no_such_procedure()`)
	if len(got) != 0 {
		t.Errorf("a command that did not bind was observed: %v", got)
	}
}
