package proxy

import "testing"

// exchange is one step of a session as the tracker sees it: a message of
// the client's forwarded upstream (from true) or one of the upstream's.
type exchange struct {
	from bool
	typ  byte
	body string
}

func client(types string) []exchange {
	var out []exchange
	for _, typ := range []byte(types) {
		out = append(out, exchange{from: true, typ: typ})
	}
	return out
}

func upstream(types string) []exchange {
	var out []exchange
	for _, typ := range []byte(types) {
		body := ""
		if typ == 'Z' {
			body = "I"
		}
		out = append(out, exchange{typ: typ, body: body})
	}
	return out
}

func tag(s string) exchange { return exchange{typ: 'C', body: s + "\x00"} }

// TestTrackerOwes follows exchanges through the typed queue: after each
// script, what is still owed, whether a Flush is due, and whether the
// upstream skips to a Sync it has not been sent.
func TestTrackerOwes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		script    [][]exchange
		owed      string
		unflushed bool
		skipping  bool
	}{
		{
			// A Query's ReadyForQuery settles the Query only: the
			// extended messages sent after it are still owed.
			name:   "query then unsynced pipeline",
			script: [][]exchange{client("QPBE"), upstream("TDCZ")},
			owed:   "PBE", unflushed: true,
		},
		{
			name:      "query then unsynced pipeline, answered",
			script:    [][]exchange{client("QPBE"), upstream("TDCZ12"), {tag("SELECT 1")}},
			unflushed: true, // (a Flush was not booked)
		},
		{
			name:   "a Flush sent",
			script: [][]exchange{client("PBEH")},
			owed:   "PBE",
		},
		{
			name:   "describe of a statement and of a portal",
			script: [][]exchange{client("PDBDS"), upstream("1tT2nZ")},
		},
		{
			// An error skips what was sent before the next Sync.
			name:   "error in a pipeline",
			script: [][]exchange{client("PBESPBES"), upstream("1E")},
			owed:   "SPBES",
		},
		{
			name:   "error in a pipeline, then its Sync",
			script: [][]exchange{client("PBESPBES"), upstream("1EZ12"), {tag("INSERT 0 1")}, upstream("Z")},
		},
		{
			// Before the pipeline's Sync is sent, what follows the error
			// is ignored by the upstream and owed nothing.
			name:     "error before the Sync is sent",
			script:   [][]exchange{client("PBE"), upstream("1E"), client("PBE")},
			skipping: true,
		},
		{
			name:   "error before the Sync is sent, then the Sync",
			script: [][]exchange{client("PBE"), upstream("1E"), client("PBES")},
			owed:   "S",
		},
		{
			// PostgreSQL ignores a Query or FunctionCall sent after the
			// failing message and before the pipeline's Sync.
			name:   "error in a pipeline, with a Query before its Sync",
			script: [][]exchange{client("PBEQFS"), upstream("1E")},
			owed:   "S",
		},
		{
			name:     "error before the Sync is sent, then a Query",
			script:   [][]exchange{client("PBE"), upstream("1E"), client("QF")},
			skipping: true,
		},
		{
			name:   "error before the Sync is sent, then a Query and the Sync",
			script: [][]exchange{client("PBE"), upstream("1E"), client("QSQ"), upstream("Z")},
			owed:   "Q",
		},
		{
			name:   "error in a simple Query",
			script: [][]exchange{client("QQ"), upstream("E")},
			owed:   "QQ",
		},
		{
			// PostgreSQL ignores the Sync sent right after the Execute
			// of a COPY FROM STDIN; the client sends another after the
			// copy.
			name:   "extended COPY FROM STDIN",
			script: [][]exchange{client("PBES"), upstream("12G"), client("ddcS")},
			owed:   "ES",
		},
		{
			name:   "extended COPY FROM STDIN, done",
			script: [][]exchange{client("PBES"), upstream("12G"), client("ddcS"), {tag("COPY 2")}, upstream("Z")},
		},
		{
			name:   "function call",
			script: [][]exchange{client("F"), upstream("VZ")},
		},
		{
			name:   "close",
			script: [][]exchange{client("CS"), upstream("3Z")},
		},
		{
			name:   "portal suspended, empty query",
			script: [][]exchange{client("PBEPBES"), upstream("12Ds12IZ")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			track := &tracker{status: 'I'}
			for _, step := range tc.script {
				for _, ex := range step {
					if ex.from {
						if !track.inCopy(ex.typ) {
							track.sent(ex.typ, false)
						}
						continue
					}
					if track.reply(ex.typ, []byte(ex.body)) {
						t.Fatalf("%q dropped", ex.typ)
					}
				}
			}
			var owed []byte
			for _, e := range track.owed[track.head:] {
				owed = append(owed, e.kind)
			}
			if string(owed) != tc.owed || track.unflushed != tc.unflushed || track.skipping != tc.skipping {
				t.Errorf("owed %q, unflushed %v, skipping %v; want %q, %v, %v", owed, track.unflushed, track.skipping, tc.owed, tc.unflushed, tc.skipping)
			}
			if track.pending() != (tc.owed != "") {
				t.Errorf("pending %v with %q owed", track.pending(), owed)
			}
		})
	}
}

// TestTrackerOwnDropped: the upstream's answers to messages the proxy sent
// itself are dropped, and only those.
func TestTrackerOwnDropped(t *testing.T) {
	track := &tracker{status: 'T'}
	track.sent('E', false)
	track.inject(abortPipeline)
	track.sent('S', false)
	track.inject(abortTransaction)
	for i, step := range []struct {
		typ  byte
		body string
		drop bool
	}{
		{'C', "UPDATE 1\x00", false},
		{'E', "", true},   // to the Parse of the proxy's
		{'Z', "E", false}, // to the client's Sync
		{'E', "", true},   // to the Query of the proxy's
		{'Z', "E", true},
		{'E', "", false}, // not owed: an error of the upstream's own
	} {
		if drop := track.reply(step.typ, []byte(step.body)); drop != step.drop {
			t.Fatalf("step %d: %q dropped %v, want %v", i, step.typ, drop, step.drop)
		}
	}
	if track.pending() || track.status != 'E' {
		t.Errorf("still owed %v, status %q", track.owed[track.head:], track.status)
	}
}

// TestTrackerQueueBounded: a client that always keeps a request in flight
// does not grow the queue.
func TestTrackerQueueBounded(t *testing.T) {
	track := &tracker{status: 'I'}
	track.sent('Q', false)
	for range 100000 {
		track.sent('Q', false)
		track.reply('Z', []byte{'I'})
	}
	if len(track.owed) > 8 || !track.pending() {
		t.Errorf("%d entries kept for one owed", len(track.owed))
	}
}

// TestTrackerStrayCopyEnd: a CopyDone with nothing owed (PostgreSQL
// ignores it) does not keep the next COPY from being seen.
func TestTrackerStrayCopyEnd(t *testing.T) {
	track := &tracker{status: 'I'}
	if !track.inCopy('c') {
		t.Fatal("a CopyDone is not the copy's")
	}
	track.sent('Q', false)
	track.reply('G', nil)
	if !track.copying {
		t.Error("the COPY after a stray CopyDone is not seen")
	}
}
