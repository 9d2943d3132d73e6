package registry

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pgmigrate/pgmigrate-proxy/policy"
)

// TestMissesBounded: orgs found nowhere are answered unknown and
// remembered for MissTTL, at most maxMisses of them, the oldest forgotten
// first.
func TestMissesBounded(t *testing.T) {
	r, err := New(Config{MissTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range maxMisses + 100 {
		if _, err := r.Lookup(ctx, fmt.Sprint("nobody-", i)); !errors.Is(err, policy.ErrUnknownTenant) {
			t.Fatalf("lookup %d: %v, want unknown", i, err)
		}
	}
	if n := len(r.misses); n != maxMisses {
		t.Errorf("%d unknown orgs remembered, want %d", n, maxMisses)
	}
	for i, want := range map[int]bool{0: false, 99: false, 100: true, maxMisses + 99: true} {
		if _, ok := r.misses[fmt.Sprint("nobody-", i)]; ok != want {
			t.Errorf("nobody-%d remembered: %v, want %v", i, ok, want)
		}
	}
	if _, err := r.Lookup(ctx, fmt.Sprint("nobody-", maxMisses+99)); !errors.Is(err, policy.ErrUnknownTenant) || r.unknown.Load() != maxMisses+101 {
		t.Errorf("a remembered miss: %v, %d answered unknown", err, r.unknown.Load())
	}
}
