package proxy

import (
	"bytes"
	"log/slog"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"
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

// An idle session on an event loop holds no relay buffer and no goroutine
// of its own.
func TestIdleSessionHoldsNothing(t *testing.T) {
	srv, fe, _ := relayedSession(t, false)
	if got := query(t, fe, "SELECT 1"); got != "RowDescription D1 SELECT 1 ZI" {
		t.Fatalf("SELECT 1: %s", got)
	}
	srv.mu.Lock()
	var s *session
	for s = range srv.sessions {
	}
	srv.mu.Unlock()
	held := make(chan [2]bool)
	for _, pl := range srv.pollers {
		pl.post(func() {
			for _, e := range pl.ends {
				if e != nil && e.rel.s == s {
					held <- [2]bool{s.cl.buf != nil, s.up.buf != nil}
					return
				}
			}
		})
	}
	if got := <-held; got != [2]bool{} {
		t.Errorf("buffers held (client's, upstream's): %v", got)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var stacks bytes.Buffer
		pprof.Lookup("goroutine").WriteTo(&stacks, 1)
		if !bytes.Contains(stacks.Bytes(), []byte("proxy.(*session)")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a goroutine of the session's is left:\n%s", stacks.Bytes())
		}
	}
}
