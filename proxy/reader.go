package proxy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/pgmigrate/pgmigrate-proxy/intercept"
)

// The startup packet limit is PostgreSQL's own.
const maxStartupPacket = 10000

// reader reads protocol messages from one connection into a buffer: first
// whole messages during startup (next), then a streaming relay (relay).
// The buffer is kept from one phase to the next, so no byte that arrived
// early is ever lost; an event loop lets go of it whenever it is drained
// (release).
type reader struct {
	conn io.Reader
	buf  []byte
	r, w int // unread data is buf[r:w]
	// Relay state: body bytes of the current message not yet passed, and
	// the type of the last message whose header was seen.
	left     int
	lastType byte
	// terminated is set once a Terminate message has passed.
	terminated atomic.Bool

	// Interception. track, shared by a session's two readers, follows
	// what the upstream owes. On the client's reader, take reports
	// whether a Query's or Parse's SQL text is a command the proxy answers
	// itself, and conv follows the extended protocol's migrate statements.
	// The scan stops before a message the proxy takes, with taken set to
	// its length, and before a message that must wait for the taken ones
	// (batch) to be answered, with answer set. need is the length of a
	// message the scan waits to see whole.
	track  *tracker
	take   func(sql []byte) bool
	conv   *intercept.Conversation
	batch  [][]byte
	taken  int
	answer bool
	need   int
	// discard is set when an answered migrate message failed: like
	// PostgreSQL, the proxy then drops what the client sends up to the
	// next Sync. drop marks the message taken only to be dropped.
	discard bool
	drop    bool
	// onAnswer answers the batch when the pumps relay.
	onAnswer func(batch [][]byte) error
	// With classifyOff, the text of a Query or Parse longer than
	// loopTextLimit is not checked during the scan: the scan stops before
	// its message with deferred set to the text, and the relay has take
	// run elsewhere and sets verdict, which the next check of a text then
	// uses, before it scans again.
	classifyOff bool
	deferred    []byte
	verdict     verdict
}

// verdict is the answer of take given for the text the scan stopped at.
type verdict uint8

const (
	noVerdict verdict = iota
	passVerdict
	takeVerdict
)

// loopTextLimit is the longest Query or Parse text checked on the relay
// loop itself: checking may read a text up to ten times over (see
// intercept.Classify; BenchmarkClassifyWorstCase), which for long texts
// would hold up every session the loop relays.
const loopTextLimit = 4 << 10

// flushMessage asks the upstream to send the answers it holds back.
var flushMessage = []byte{'H', 0, 0, 0, 4}

func newReader(conn io.Reader, size int) *reader {
	return &reader{conn: conn, buf: make([]byte, size)}
}

// fill ensures at least n unread bytes are buffered, growing the buffer if a
// single message needs it.
func (rd *reader) fill(n int) error {
	if rd.w-rd.r >= n {
		return nil
	}
	if rd.r+n > len(rd.buf) {
		if n > len(rd.buf) {
			buf := make([]byte, n)
			rd.w = copy(buf, rd.buf[rd.r:rd.w])
			rd.buf = buf
		} else {
			rd.w = copy(rd.buf, rd.buf[rd.r:rd.w])
		}
		rd.r = 0
	}
	for rd.w-rd.r < n {
		m, err := rd.conn.Read(rd.buf[rd.w:])
		rd.w += m
		if err != nil && rd.w-rd.r < n {
			return err
		}
	}
	return nil
}

// release lets go of the buffer when nothing waits in it, giving it back
// to the pool if it is one of the pool's (one grown for a long message is
// left to the collector): read on, the reader borrows another.
func (rd *reader) release() {
	if rd.r != rd.w {
		return
	}
	if cap(rd.buf) == bufferSize {
		buffers.Put((*[bufferSize]byte)(rd.buf[:bufferSize]))
	}
	rd.buf, rd.r, rd.w = nil, 0, 0
}

// buffered reports whether unread bytes are waiting.
func (rd *reader) buffered() bool { return rd.r < rd.w }

// startupPacket returns the next untyped startup packet (length included),
// valid until the next read.
func (rd *reader) startupPacket() ([]byte, error) {
	if err := rd.fill(4); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(rd.buf[rd.r:]))
	if n < 8 || n > maxStartupPacket {
		// PostgreSQL only logs this, and closes the connection: a
		// Terminate sent before the startup packet ends here.
		return nil, fmt.Errorf("invalid length of startup packet: %d", n)
	}
	if err := rd.fill(n); err != nil {
		return nil, err
	}
	p := rd.buf[rd.r : rd.r+n]
	rd.r += n
	return p, nil
}

// next returns the next whole message, header included, valid until the
// next read.
func (rd *reader) next(maxBody int) ([]byte, error) {
	if err := rd.fill(5); err != nil {
		return nil, err
	}
	n, err := bodyLen(rd.buf[rd.r:], maxBody)
	if err != nil {
		return nil, err
	}
	if err := rd.fill(5 + n); err != nil {
		return nil, err
	}
	msg := rd.buf[rd.r : rd.r+5+n]
	rd.r += 5 + n
	return msg, nil
}

// bodyLen checks the length in a message header and returns the body size.
func bodyLen(header []byte, maxBody int) (int, error) {
	n := int(binary.BigEndian.Uint32(header[1:5])) - 4
	if n < 0 {
		return 0, &protocolError{fmt.Sprintf("invalid message length %d for message type %q", n+4, header[0])}
	}
	if n > maxBody {
		return 0, &tooLargeError{Type: header[0], Size: n, Max: maxBody}
	}
	return n, nil
}

// writeError marks a failure to write to the destination of a relay.
type writeError struct{ err error }

func (e writeError) Error() string { return "write: " + e.err.Error() }
func (e writeError) Unwrap() error { return e.err }

// atBoundary reports whether everything read so far has been passed on and
// no message is half-forwarded.
func (rd *reader) atBoundary() bool { return rd.left == 0 && rd.r == rd.w }

// relay copies messages to dst until reading or writing fails, counting the
// bytes written in sent. Bytes are forwarded as soon as they arrive, in
// whole runs of the buffer; headers are checked against maxBody as they
// pass. A write failure is returned as a writeError.
func (rd *reader) relay(dst io.Writer, maxBody int, sent *atomic.Int64) error {
	for {
		p, badHeader := rd.lockedScan(maxBody)
		if p > rd.r {
			m, err := dst.Write(rd.buf[rd.r:p])
			sent.Add(int64(m))
			if err != nil {
				return writeError{err}
			}
			rd.r = p
		}
		rd.written()
		if badHeader != nil {
			return badHeader
		}
		if rd.stopped() {
			if batch := rd.takeMessage(); batch != nil {
				if err := rd.onAnswer(batch); err != nil {
					return err
				}
			}
			continue
		}
		rd.compact()
		m, err := rd.conn.Read(rd.buf[rd.w:])
		rd.w += m
		if err != nil && m == 0 {
			return err
		}
	}
}

// lockedScan is scan for the pumps, whose two goroutines share the
// tracker. What the upstream's scan passes is unwritten until written.
func (rd *reader) lockedScan(maxBody int) (int, error) {
	if rd.track == nil {
		return rd.scan(maxBody)
	}
	t := rd.track
	t.mu.Lock()
	defer t.mu.Unlock()
	p, err := rd.scan(maxBody)
	t.unwritten = t.unwritten || rd.take == nil && p > rd.r
	return p, err
}

// written tells the client's pump, after a write of the upstream's, that
// what it booked is written: unless a message is half passed on.
func (rd *reader) written() {
	t := rd.track
	if t == nil || rd.take != nil {
		return
	}
	t.mu.Lock()
	t.unwritten = rd.left > 0
	t.mu.Unlock()
	select {
	case t.answered <- struct{}{}:
	default:
	}
}

// compact makes room to read into once everything scanned has been
// written: only a partial header, or a Query being waited for, can remain;
// it moves to the front when the buffer is full or too short for the
// Query, and the buffer grows for a Query larger than it.
func (rd *reader) compact() {
	if rd.r == rd.w {
		rd.r, rd.w = 0, 0
	} else if rd.w == len(rd.buf) || rd.r+rd.need > len(rd.buf) {
		rd.w = copy(rd.buf, rd.buf[rd.r:rd.w])
		rd.r = 0
	}
	if rd.need > len(rd.buf) {
		buf := make([]byte, rd.need)
		copy(buf, rd.buf[:rd.w])
		rd.buf = buf
	}
}

// scan walks the buffered bytes from rd.r over whole headers and (parts
// of) bodies and returns where the bytes that may be forwarded end. It stops
// before a partial header, or at a header with a bad length, returning its
// error.
func (rd *reader) scan(maxBody int) (int, error) {
	rd.need = 0
	p := rd.r
	for p < rd.w {
		if rd.left > 0 {
			step := min(rd.left, rd.w-p)
			p += step
			rd.left -= step
			continue
		}
		if rd.w-p < 5 {
			break
		}
		n, err := bodyLen(rd.buf[p:], maxBody)
		if err != nil {
			return p, err
		}
		if rd.track != nil && rd.observe(p, n) {
			return p, nil
		}
		rd.lastType = rd.buf[p]
		if rd.lastType == 'X' {
			rd.terminated.Store(true)
		}
		p += 5
		rd.left = n
	}
	return p, nil
}

// observe keeps the tracker up to date with the message whose header is
// at p, and reports whether the scan must stop before it: a message to see
// whole first, one the proxy takes (or drops), or one that must wait until
// the messages taken so far are answered.
func (rd *reader) observe(p, n int) bool {
	typ := rd.buf[p]
	t := rd.track
	if rd.take == nil { // the upstream's reader
		if t.wantsWhole(typ) && p+5+n > rd.w {
			rd.need = 5 + n
			return true
		}
		var body []byte
		if p+5+n <= rd.w {
			body = rd.buf[p+5 : p+5+n]
		}
		if t.reply(typ, body) {
			rd.taken, rd.drop = 5+n, true
			return true
		}
		return false
	}
	if rd.discard && typ != 'S' {
		if p+5+n > rd.w {
			rd.need = 5 + n
			return true
		}
		rd.taken, rd.drop, rd.verdict = 5+n, true, noVerdict
		return true
	}
	rd.discard = false
	if t.inCopy(typ) {
		rd.verdict = noVerdict
		return false
	}
	portalMsg := typ == 'B' || typ == 'D' || typ == 'E' || typ == 'C'
	inspect := typ == 'Q' || typ == 'P' || typ == 'S' || typ == 'H' || portalMsg && rd.conv.Active()
	if inspect && p+5+n > rd.w {
		rd.need = 5 + n
		return true
	}
	if rd.classifyOff && rd.verdict == noVerdict && (typ == 'Q' || typ == 'P') && n > loopTextLimit {
		rd.deferred = intercept.SQLText(typ, rd.buf[p+5:p+5+n])
		return true
	}
	taken := false
	switch typ {
	case 'Q':
		taken = rd.check(rd.buf[p+5 : p+4+n])
	case 'S':
		rd.conv.Take(rd.buf[p:p+5+n], rd.check)
		taken = len(rd.batch) > 0 && !t.forwarded
	case 'H':
		taken = len(rd.batch) > 0
	default:
		taken = inspect && rd.conv.Take(rd.buf[p:p+5+n], rd.check)
	}
	switch {
	case taken:
		rd.taken = 5 + n
		rd.answer = typ == 'Q' || typ == 'S' || typ == 'H'
		return true
	case len(rd.batch) > 0:
		// The batch is answered first; this message's text was checked,
		// and must not be again (a DDL statement would be audited twice).
		if typ == 'Q' || typ == 'P' {
			rd.verdict = passVerdict
		}
		rd.answer = true
		return true
	case typ == 'Q' || typ == 'S' || typ == 'F':
		t.forwarded = false
	case typ == 'P' || portalMsg:
		t.forwarded = true
	}
	t.sent(typ, false)
	return false
}

// check is take for the text of the Query or Parse at the scan's
// position, or the verdict given for it elsewhere.
func (rd *reader) check(sql []byte) bool {
	v := rd.verdict
	rd.verdict = noVerdict
	if v != noVerdict {
		return v == takeVerdict
	}
	return rd.take(sql)
}

// takeMessage moves the message the scan took into the batch, and returns
// the batch if it is to be answered now (emptying it), else nil.
func (rd *reader) takeMessage() [][]byte {
	if rd.taken > 0 {
		if !rd.drop {
			rd.batch = append(rd.batch, bytes.Clone(rd.buf[rd.r:rd.r+rd.taken]))
		}
		rd.r += rd.taken
		rd.taken, rd.drop = 0, false
	}
	if !rd.answer {
		return nil
	}
	batch := rd.batch
	rd.batch, rd.answer = nil, false
	return batch
}

// stopped reports whether the scan stopped for interception.
func (rd *reader) stopped() bool { return rd.taken > 0 || rd.answer || rd.deferred != nil }

// protocolError is a malformed message from a peer.
type protocolError struct{ msg string }

func (e *protocolError) Error() string    { return e.msg }
func (e *protocolError) SQLState() string { return "08P01" }

// tooLargeError is a message over the configured maximum size.
type tooLargeError struct {
	Type      byte
	Size, Max int
}

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("message of type %q with %d bytes exceeds the maximum message size of %d bytes", e.Type, e.Size, e.Max)
}
func (e *tooLargeError) SQLState() string { return "54000" }
