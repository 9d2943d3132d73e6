package proxy

import (
	"log/slog"
	"runtime"
	"testing"
)

// TestSessionsSpreadOverLoops: a server runs an event loop per core and
// gives them sessions in turn.
func TestSessionsSpreadOverLoops(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	srv := New(Config{Logger: slog.New(slog.DiscardHandler)})
	if len(srv.pollers) != 4 {
		t.Fatalf("%d event loops, want one per core (4)", len(srv.pollers))
	}
	seen := map[*poller]int{}
	for range 8 {
		seen[srv.poller()]++
	}
	for _, pl := range srv.pollers {
		if seen[pl] != 2 {
			t.Errorf("sessions per loop %v, want 2 each", seen)
		}
	}
}
