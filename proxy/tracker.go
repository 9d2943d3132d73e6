package proxy

import "sync"

// tracker follows what a session's upstream owes: one expected reply per
// request forwarded to it, oldest first, each popped by the reply that
// settles it, so that the proxy knows when everything sent before a
// migrate command has been answered, the transaction status at that
// point of a pipeline, and which replies are answers to messages of its
// own (dropped on their way to the client).
//
// The poller's loop alone touches the trackers of the sessions it relays;
// the goroutine pumps (relayPumps) share one between two goroutines and
// hold mu while they touch it.
type tracker struct {
	mu sync.Mutex
	// owed[head:] are the replies owed, oldest first.
	owed []expected
	head int
	// unflushed is set when extended-protocol messages went upstream
	// after the last Sync, Query or Flush: PostgreSQL holds their
	// replies back until one comes.
	unflushed bool
	// skipping is set when the upstream failed in a pipeline whose Sync
	// it has not been sent yet: it ignores everything but that Sync, and
	// the messages sent meanwhile are owed nothing.
	skipping bool
	// status is the transaction status: that of the last ReadyForQuery,
	// changed since by the CommandComplete of a BEGIN, COMMIT or ROLLBACK
	// in a pipeline (see tagged); savepoints is set when a SAVEPOINT ran
	// in the transaction.
	status     byte
	savepoints bool
	// forwarded is set when an extended-protocol message went upstream
	// since the last Sync: that Sync must go upstream too.
	forwarded bool
	// copying is set while the upstream is in a COPY FROM STDIN (from its
	// CopyInResponse, or CopyBothResponse, to the copy's end, or the
	// client's CopyDone or CopyFail): what the client sends meanwhile is
	// the copy's, and passes untaken and owed nothing. copyEnds counts the
	// copies the client ended before their start was seen.
	copying  bool
	copyEnds int
	// For the pumps (relayPumps): unwritten is set while replies the
	// upstream's pump has booked are not yet written to the client (the
	// answer of a migrate command goes after them), and answered hears,
	// without blocking, of each write of the upstream's pump: the
	// client's pump waits on it for the upstream to owe nothing.
	unwritten bool
	answered  chan struct{}
}

// expected is a reply owed: to a request of type kind ('Q', 'F', 'S',
// or an extended-protocol message: 'P', 'B', 'D', 'E', 'C'); own marks
// a request the proxy sent itself, whose ErrorResponse and ReadyForQuery
// the client must not see.
type expected struct {
	kind byte
	own  bool
}

// maxKeptOwed is the largest queue array kept once drained.
const maxKeptOwed = 64

// endsInReady reports whether a request's reply ends with ReadyForQuery.
func endsInReady(kind byte) bool { return kind == 'Q' || kind == 'F' || kind == 'S' }

// pending reports whether the upstream owes anything.
func (t *tracker) pending() bool { return t.head < len(t.owed) }

func (t *tracker) front() expected {
	if t.pending() {
		return t.owed[t.head]
	}
	return expected{}
}

// sent books a message of type typ forwarded upstream.
func (t *tracker) sent(typ byte, own bool) {
	switch typ {
	case 'S':
		t.unflushed, t.skipping = false, false
	case 'Q', 'F':
		if t.skipping { // ignored too: only a Sync ends the skipping
			return
		}
		t.unflushed = false
	case 'P', 'B', 'D', 'E', 'C':
		if t.skipping {
			return
		}
		t.unflushed = true
	case 'H':
		t.unflushed = false
		return
	default: // CopyData, CopyDone, CopyFail, Terminate: owed nothing
		return
	}
	switch {
	case t.head == len(t.owed) && cap(t.owed) > maxKeptOwed:
		t.owed, t.head = nil, 0 // a burst's array is not kept
	case t.head == len(t.owed):
		t.owed, t.head = t.owed[:0], 0
	case t.head >= len(t.owed)/2:
		// Settled entries are half the queue: drop them, so that a client
		// that always keeps a request in flight does not grow it.
		n := copy(t.owed, t.owed[t.head:])
		t.owed, t.head = t.owed[:n], 0
	}
	t.owed = append(t.owed, expected{kind: typ, own: own})
}

// inCopy books a message of the client's that ends a copy, and reports
// whether one of type typ belongs to a copy: CopyData, CopyDone and
// CopyFail, and while a COPY FROM STDIN runs, a Query or Parse (on which
// PostgreSQL fails the copy) or a Sync or Flush (which it ignores).
func (t *tracker) inCopy(typ byte) bool {
	switch typ {
	case 'c', 'f':
		switch {
		case t.copying:
			t.copying = false
		case t.pending():
			// A copy the client ends before its start is heard of (one
			// with nothing owed would be a stray, which PostgreSQL
			// ignores).
			t.copyEnds++
		}
		return true
	case 'd':
		return true
	case 'Q', 'P', 'S', 'H':
		return t.copying
	}
	return false
}

// inject books msg, a message the proxy sends upstream of its own, and
// returns it.
func (t *tracker) inject(msg []byte) []byte {
	t.sent(msg[0], true)
	return msg
}

// wantsWhole reports whether the reply of type typ must be seen whole
// before it passes: a CommandComplete (its tag), a ReadyForQuery (its
// status), and an ErrorResponse to drop.
func (t *tracker) wantsWhole(typ byte) bool {
	return typ == 'C' || typ == 'Z' || typ == 'E' && t.front().own
}

// reply books a message of type typ from the upstream, whole when
// wantsWhole says so (body is its body), and reports whether it answers
// a message of the proxy's own, so that the client must not see it.
func (t *tracker) reply(typ byte, body []byte) (drop bool) {
	front := t.front()
	drop = front.own && (typ == 'E' || typ == 'Z')
	switch typ {
	case 'Z':
		if len(body) > 0 {
			t.status = body[0]
		}
		if t.status == 'I' {
			t.savepoints = false
		}
		t.skipping, t.copying = false, false
		t.popThrough(endsInReady)
		if !t.pending() {
			t.copyEnds = 0
		}
	case 'E':
		t.copying = false
		if !endsInReady(front.kind) && t.pending() {
			// The upstream skips to the next Sync: what it was sent
			// before that Sync, a Query or FunctionCall included, is
			// owed nothing.
			for t.pending() && t.front().kind != 'S' {
				t.head++
			}
			t.skipping = !t.pending()
			if t.skipping {
				t.unflushed = false
			}
		}
	case 'C':
		t.tagged(string(body[:max(len(body)-1, 0)]))
		t.copying = false
		t.popIf('E')
	case 'G', 'W':
		if front.kind == 'E' {
			// A COPY FROM STDIN run by an Execute: PostgreSQL ignores a
			// Sync sent after it until the copy ends.
			for t.head+1 < len(t.owed) && t.owed[t.head+1].kind == 'S' {
				t.owed = append(t.owed[:t.head+1], t.owed[t.head+2:]...)
			}
		}
		if t.copyEnds > 0 {
			t.copyEnds--
		} else {
			t.copying = true
		}
	case '1':
		t.popIf('P')
	case '2':
		t.popIf('B')
	case '3':
		t.popIf('C')
	case 'T', 'n':
		t.popIf('D')
	case 's', 'I':
		t.popIf('E')
	}
	return drop
}

// tagged follows the transaction status through the CommandComplete of
// a transaction control statement, which a pipeline's ReadyForQuery comes
// only after. ROLLBACK TO SAVEPOINT is tagged ROLLBACK too, and stays in
// the transaction: once a savepoint has been set, a ROLLBACK leaves the
// status to the ReadyForQuery.
func (t *tracker) tagged(tag string) {
	switch tag {
	case "BEGIN", "START TRANSACTION":
		t.status, t.savepoints = 'T', false
	case "SAVEPOINT":
		t.savepoints = true
	case "COMMIT":
		t.status, t.savepoints = 'I', false
	case "ROLLBACK":
		if !t.savepoints {
			t.status = 'I'
		}
	}
}

// popIf settles the oldest reply owed if it is to a request of type kind.
func (t *tracker) popIf(kind byte) {
	if t.pending() && t.owed[t.head].kind == kind {
		t.head++
	}
}

// popThrough settles the owed replies up to and including the first to a
// request that end satisfies.
func (t *tracker) popThrough(end func(kind byte) bool) {
	for t.pending() {
		kind := t.owed[t.head].kind
		t.head++
		if end(kind) {
			break
		}
	}
}
