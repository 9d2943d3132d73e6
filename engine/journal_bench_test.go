package engine

import (
	"slices"
	"testing"
	"time"
)

// The journal benchmarks measure what the intent journal costs: an
// AddField of one transaction (not journaled, but every command looks for
// its tenant's unfinished intents) and one of several phases (journaled),
// alone and across the tenants experiment's tenants.

// latencyRows is the size of the table of BenchmarkAddFieldLatency.
const latencyRows = 10_000

// codeField is a unique field, which a table with rows gets in three
// phases: ADD COLUMN, CREATE UNIQUE INDEX CONCURRENTLY, ADD CONSTRAINT.
func codeField() FieldSpec { return FieldSpec{Name: "code", Type: Int, Unique: true} }

// BenchmarkAddFieldLatency applies an AddField to a table of latencyRows
// rows and drops the field again, b.N times, and reports the median time
// of the AddField.
func BenchmarkAddFieldLatency(b *testing.B) {
	b.Run("one-phase", func(b *testing.B) { benchAddFieldLatency(b, statusField()) })
	b.Run("unique", func(b *testing.B) { benchAddFieldLatency(b, codeField()) })
}

func benchAddFieldLatency(b *testing.B, f FieldSpec) {
	db := newItemsDB(b, DefaultOptions(), latencyRows)
	add := &AddField{Model: benchModel, Field: f}
	drop := &DropField{Model: benchModel, Field: f.Name}
	var times []time.Duration
	for b.Loop() {
		start := time.Now()
		wantApplied(b, db.apply(b, benchOrg, add))
		times = append(times, time.Since(start))
		db.apply(b, benchOrg, drop)
	}
	slices.Sort(times)
	b.ReportMetric(millis(times[len(times)/2]), "add-ms")
}

// BenchmarkAddFieldTenantsUnique is the tenants experiment with a unique
// field: every tenant's AddField is journaled.
func BenchmarkAddFieldTenantsUnique(b *testing.B) {
	var first time.Duration
	for b.Loop() {
		_, e, orgs := newAnalyzedTenants(b)
		first = applyToTenants(b, e, orgs, &AddField{Model: benchModel, Field: codeField()}, Applied)
	}
	b.ReportMetric(millis(first), "applied-ms")
}

// newAnalyzedTenants is a fresh database holding the tenants experiment's
// tenants (createItemTenants), analyzed, and an engine with a pool for
// tenantWorkers workers.
func newAnalyzedTenants(b *testing.B) (*testDB, *Engine, []string) {
	b.Helper()
	opts := DefaultOptions()
	db := newTestDB(b, opts)
	orgs := createItemTenants(b, db)
	db.exec(b, "ANALYZE")
	return db, engineWithConns(b, db, tenantWorkers, opts), orgs
}
