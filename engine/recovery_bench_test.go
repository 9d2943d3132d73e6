package engine

import (
	"context"
	"testing"
	"time"
)

// BenchmarkRecoverIntents leaves tenantCount unfinished intents, each a
// unique AddField stopped after its ADD COLUMN, and times the sweep that
// completes them all.
func BenchmarkRecoverIntents(b *testing.B) {
	var wall time.Duration
	for b.Loop() {
		db, e, orgs := newAnalyzedTenants(b)
		e.fault = func(_ context.Context, _ string, phase int) error {
			if phase == 1 {
				return errFault
			}
			return nil
		}
		op := &AddField{Model: benchModel, Field: codeField()}
		for _, org := range orgs {
			if _, err := e.Apply(b.Context(), org, op); err != errFault {
				b.Fatalf("%s: %v, want the fault", org, err)
			}
		}
		e.fault = nil
		start := time.Now()
		n, err := e.RecoverAll(b.Context())
		wall = time.Since(start)
		if err != nil || n != 0 {
			b.Fatalf("recovery: %d unfinished, %v", n, err)
		}
		if got := scalar[int](b, db, "SELECT count(*)::int FROM pgmigrate.history WHERE operation = 'add_field'"); got != len(orgs) {
			b.Fatalf("%d add_field history rows, want %d", got, len(orgs))
		}
	}
	b.ReportMetric(float64(tenantCount), "intents")
	b.ReportMetric(millis(wall), "recover-ms")
}
