package registry

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/pgmigrate/pgmigrate-proxy/policy"
)

// BenchmarkLookup looks up orgs among 10,000 and 100,000 registered
// tenants, and reports the heap each tenant holds (B/tenant).
//
//	go test -run '^$' -bench Lookup -benchmem ./registry/
func BenchmarkLookup(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			r, err := New(Config{})
			if err != nil {
				b.Fatal(err)
			}
			orgs := make([]string, n)
			for i := range orgs {
				orgs[i] = fmt.Sprintf("org-%06d", i)
				r.store(policy.Tenant{Org: orgs[i], Upstream: "main", Database: "crm", Schema: orgs[i]})
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			ctx := context.Background()
			b.ResetTimer()
			for i := range b.N {
				if _, err := r.Lookup(ctx, orgs[i%n]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "B/tenant")
			runtime.KeepAlive(orgs)
		})
	}
}
