package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/pgmigrate/pgmigrate-proxy/intercept"
)

// message encodes one protocol message with a body of n bytes.
func message(typ byte, n int) []byte {
	m := make([]byte, 5+n)
	m[0] = typ
	binary.BigEndian.PutUint32(m[1:], uint32(4+n))
	for i := range n {
		m[5+i] = byte(i)
	}
	return m
}

// chunkReader returns its data in reads of random sizes.
type chunkReader struct {
	data []byte
	rnd  *rand.Rand
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), 1+c.rnd.IntN(300))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func TestRelayPassesBytesIntact(t *testing.T) {
	var in []byte
	for i := range 200 {
		in = append(in, message("QPBEDdZX"[i%8], i*37%5000)...)
	}
	for seed := range uint64(20) {
		rd := newReader(&chunkReader{data: in, rnd: rand.New(rand.NewPCG(seed, 1))}, 512)
		var out bytes.Buffer
		var sent atomic.Int64
		err := rd.relay(&out, 1<<20, &sent)
		if !errors.Is(err, io.EOF) {
			t.Fatalf("relay: %v", err)
		}
		if !bytes.Equal(out.Bytes(), in) {
			t.Fatalf("seed %d: output differs from input", seed)
		}
		if sent.Load() != int64(len(in)) || !rd.atBoundary() || !rd.terminated.Load() {
			t.Fatalf("sent %d of %d, boundary %v, terminated %v", sent.Load(), len(in), rd.atBoundary(), rd.terminated.Load())
		}
	}
}

func TestRelayStopsAtBadLength(t *testing.T) {
	tests := []struct {
		name   string
		header []byte
		want   string
	}{
		{"too large", []byte{'Q', 0x80, 0, 0, 0}, "54000"},
		{"over limit", message('d', 2000)[:5], "54000"},
		{"below four", []byte{'Q', 0, 0, 0, 3}, "08P01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := message('Q', 10)
			rd := newReader(bytes.NewReader(append(good, tt.header...)), 64)
			var out bytes.Buffer
			err := rd.relay(&out, 1024, new(atomic.Int64))
			var st sqlStater
			if !errors.As(err, &st) || st.SQLState() != tt.want {
				t.Fatalf("relay error = %v, want SQLSTATE %s", err, tt.want)
			}
			if !bytes.Equal(out.Bytes(), good) {
				t.Fatalf("forwarded %q, want only the good message", out.Bytes())
			}
		})
	}
}

func TestRelayReportsWriteError(t *testing.T) {
	rd := newReader(bytes.NewReader(message('Q', 10)), 64)
	err := rd.relay(failWriter{}, 1024, new(atomic.Int64))
	var we writeError
	if !errors.As(err, &we) {
		t.Fatalf("relay error = %v, want a writeError", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestNextReadsWholeMessages(t *testing.T) {
	big := message('p', 3000)
	rd := newReader(&chunkReader{data: append(message('R', 8), big...), rnd: rand.New(rand.NewPCG(1, 2))}, 64)
	m, err := rd.next(1 << 20)
	if err != nil || !bytes.Equal(m, message('R', 8)) {
		t.Fatalf("first message %q, %v", m, err)
	}
	m, err = rd.next(1 << 20)
	if err != nil || !bytes.Equal(m, big) {
		t.Fatalf("second message differs (%d bytes), %v", len(m), err)
	}
	if _, err := rd.next(1 << 20); !errors.Is(err, io.EOF) {
		t.Fatalf("after the end: %v", err)
	}
}

func TestStartupPacketLength(t *testing.T) {
	for _, n := range []uint32{0, 7, maxStartupPacket + 1} {
		rd := newReader(bytes.NewReader(binary.BigEndian.AppendUint32(nil, n)), 64)
		// An error without a SQLSTATE: the session ends without a word.
		var st sqlStater
		if _, err := rd.startupPacket(); err == nil || errors.As(err, &st) {
			t.Errorf("length %d: error %v, want one without a SQLSTATE", n, err)
		}
	}
}

func FuzzRelay(f *testing.F) {
	f.Add(append(message('Q', 20), message('X', 0)...), uint64(1))
	f.Add([]byte{'Q', 0, 0, 0}, uint64(2))
	f.Add([]byte{'d', 0x7f, 0xff, 0xff, 0xff, 1, 2}, uint64(3))
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		rd := newReader(&chunkReader{data: in, rnd: rand.New(rand.NewPCG(seed, seed))}, 16)
		var out bytes.Buffer
		err := rd.relay(&out, 4096, new(atomic.Int64))
		if !bytes.HasPrefix(in, out.Bytes()) {
			t.Fatalf("output is not a prefix of the input")
		}
		if errors.Is(err, io.EOF) && out.Len() != len(in) && len(in)-out.Len() >= 5 {
			t.Fatalf("stopped at EOF with %d of %d bytes forwarded", out.Len(), len(in))
		}
	})
}

// loopReader serves the same stream of messages over and over, in reads of
// up to the caller's buffer size, until limit bytes have been read.
type loopReader struct {
	stream []byte
	pos    int
	limit  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	if l.limit == 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && l.limit > 0 {
		c := copy(p[n:min(len(p), n+l.limit)], l.stream[l.pos:])
		n += c
		l.limit -= c
		l.pos = (l.pos + c) % len(l.stream)
	}
	return n, nil
}

// BenchmarkRelay measures the relay loop per message for a typical result
// stream (RowDescription, DataRows, CommandComplete, ReadyForQuery).
func BenchmarkRelay(b *testing.B) {
	var stream []byte
	stream = append(stream, message('T', 60)...)
	for range 20 {
		stream = append(stream, message('D', 80)...)
	}
	stream = append(stream, message('C', 13)...)
	stream = append(stream, message('Z', 1)...)
	benchRelay(b, stream, 23, func(*reader) {})
}

// TestLongTextCheckedOffTheScan: with classifyOff, the scan does not check
// a Query text longer than loopTextLimit: it stops before the message with
// the text in deferred, and uses the verdict given for it when it scans
// again; shorter texts are checked at once.
func TestLongTextCheckedOffTheScan(t *testing.T) {
	long := "SELECT '" + string(bytes.Repeat([]byte{'x'}, loopTextLimit)) + "'"
	in := append(queryMessage("SELECT 1"), queryMessage(long)...)
	rd := newReader(bytes.NewReader(in), 2*len(in))
	rd.fill(len(in))
	var checked []string
	rd.track, rd.classifyOff = &tracker{}, true
	rd.take = func(sql []byte) bool {
		checked = append(checked, string(sql))
		return false
	}
	p, err := rd.scan(1 << 20)
	if err != nil || p != len(queryMessage("SELECT 1")) || string(rd.deferred) != long || len(checked) != 1 {
		t.Fatalf("scan stopped at %d (%v) with deferred %.20q and %d texts checked", p, err, rd.deferred, len(checked))
	}
	rd.r, rd.deferred, rd.verdict = p, nil, takeVerdict
	if p, err = rd.scan(1 << 20); err != nil || p != rd.r || rd.taken != len(queryMessage(long)) || len(checked) != 1 {
		t.Fatalf("rescan stopped at %d (%v), taken %d, %d texts checked: the verdict was not used", p, err, rd.taken, len(checked))
	}
}

// TestTextCheckedOnceBehindABatch: a Query after a taken message waits
// for the batch to be answered, and its text, checked once already, is not
// checked again when the scan goes on (a DDL statement would be audited
// twice).
func TestTextCheckedOnceBehindABatch(t *testing.T) {
	parse := append([]byte{'P', 0, 0, 0, 0, 0}, "CALL migrate.list_models()\x00\x00\x00"...)
	binary.BigEndian.PutUint32(parse[1:], uint32(len(parse)-1))
	in := append(parse, queryMessage("CREATE TABLE t (id int)")...)
	rd := newReader(bytes.NewReader(in), 2*len(in))
	rd.fill(len(in))
	checks := map[string]int{}
	rd.track, rd.conv = &tracker{}, &intercept.Conversation{}
	rd.take = func(sql []byte) bool {
		checks[string(sql)]++
		return bytes.HasPrefix(sql, []byte("CALL"))
	}
	if _, err := rd.scan(1 << 20); err != nil || rd.taken != len(parse) {
		t.Fatalf("the Parse was not taken (%v)", err)
	}
	rd.takeMessage()
	if _, err := rd.scan(1 << 20); err != nil || !rd.answer || len(rd.batch) != 1 {
		t.Fatalf("the scan did not stop for the batch before the Query (%v)", err)
	}
	rd.takeMessage()
	p, err := rd.scan(1 << 20)
	if err != nil || p != len(in) || rd.stopped() {
		t.Fatalf("the Query did not pass after the batch: at %d of %d (%v)", p, len(in), err)
	}
	if n := checks["CREATE TABLE t (id int)"]; n != 1 {
		t.Errorf("the Query's text was checked %d times", n)
	}
}

// queryMessage encodes a simple Query of sql.
func queryMessage(sql string) []byte {
	m := append([]byte{'Q', 0, 0, 0, 0}, sql...)
	m = append(m, 0)
	binary.BigEndian.PutUint32(m[1:], uint32(len(m)-1))
	return m
}

// byteReader returns its data a byte at a time after the first skip bytes,
// so a message ends and starts at every position of the buffer.
type byteReader struct {
	data []byte
	skip int
}

func (b *byteReader) Read(p []byte) (int, error) {
	if len(b.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(b.data), max(1, b.skip))
	b.skip = 0
	copy(p, b.data[:n])
	b.data = b.data[n:]
	return n, nil
}

// commandComplete encodes a CommandComplete of tag.
func commandComplete(tag string) []byte {
	m, _ := (&pgproto3.CommandComplete{CommandTag: []byte(tag)}).Encode(nil)
	return m
}

// relayUpstream relays in, read a byte at a time after the first skip
// bytes, as the upstream's reader with track, and returns what passed.
func relayUpstream(t *testing.T, track *tracker, in []byte, skip int) []byte {
	t.Helper()
	rd := newReader(&byteReader{data: in, skip: skip}, 16)
	rd.track = track
	var out bytes.Buffer
	if err := rd.relay(&out, 1<<20, new(atomic.Int64)); !errors.Is(err, io.EOF) {
		t.Fatalf("split at %d: relay %v", skip, err)
	}
	return out.Bytes()
}

// TestUpstreamStatusSeen: a BEGIN's CommandComplete from the upstream,
// split at any byte, puts the session in a transaction until a COMMIT's, a
// ROLLBACK's or the next ReadyForQuery; other tags do not, nor does a
// ROLLBACK's after a SAVEPOINT's, which may be a ROLLBACK TO SAVEPOINT.
func TestUpstreamStatusSeen(t *testing.T) {
	for _, tc := range []struct {
		tags   []string
		status byte
	}{
		{[]string{"BEGIN"}, 'T'},
		{[]string{"START TRANSACTION"}, 'T'},
		{[]string{"SELECT 1"}, 'I'},
		{[]string{"BEGINX"}, 'I'},
		{[]string{"BEGIN", "COMMIT"}, 'I'},
		{[]string{"BEGIN", "ROLLBACK"}, 'I'},
		{[]string{"BEGIN", "SAVEPOINT", "ROLLBACK"}, 'T'}, // ROLLBACK TO SAVEPOINT
		{[]string{"BEGIN", "SAVEPOINT", "COMMIT"}, 'I'},
		{[]string{"BEGIN", "SAVEPOINT", "COMMIT", "BEGIN", "ROLLBACK"}, 'I'},
	} {
		msgs := message('2', 0)
		for _, tag := range tc.tags {
			msgs = append(msgs, commandComplete(tag)...)
		}
		for skip := range len(msgs) {
			track := &tracker{status: 'I'}
			if out := relayUpstream(t, track, msgs, skip); !bytes.Equal(out, msgs) {
				t.Fatalf("%s, split at %d: output %q", tc.tags, skip, out)
			}
			if track.status != tc.status {
				t.Errorf("%s, split at %d: status %q, want %q", tc.tags, skip, track.status, tc.status)
			}
		}
	}
	track := &tracker{status: 'T'}
	relayUpstream(t, track, []byte{'Z', 0, 0, 0, 5, 'I'}, 0)
	if track.status != 'I' {
		t.Error("still in a transaction after a ReadyForQuery")
	}
}

// TestUpstreamErrorDropped: the ErrorResponse to the Parse the proxy sent
// to fail a pipeline, split at any byte, is dropped from the upstream's
// stream, once; the messages around it and a later error pass.
func TestUpstreamErrorDropped(t *testing.T) {
	provoked, _ := (&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "syntax error"}).Encode(nil)
	later, _ := (&pgproto3.ErrorResponse{Severity: "ERROR", Code: "22012", Message: "division by zero"}).Encode(nil)
	rfq := []byte{'Z', 0, 0, 0, 5, 'I'}
	in := slices.Concat(commandComplete("INSERT 0 1"), provoked, rfq, later, rfq)
	want := slices.Concat(commandComplete("INSERT 0 1"), rfq, later, rfq)
	for skip := range len(in) {
		track := &tracker{}
		track.sent('E', false)
		track.inject(abortPipeline)
		track.sent('S', false)
		track.sent('Q', false)
		if out := relayUpstream(t, track, in, skip); !bytes.Equal(out, want) || track.pending() {
			t.Fatalf("split at %d: output %q, still owed %v; want %q", skip, out, track.owed[track.head:], want)
		}
	}
}

// TestUpstreamAnswerDropped: the error and ReadyForQuery of a Query the
// proxy sent to fail a transaction are dropped, split at any byte, the
// ReadyForQuery's status kept.
func TestUpstreamAnswerDropped(t *testing.T) {
	provoked, _ := (&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "syntax error"}).Encode(nil)
	failed := []byte{'Z', 0, 0, 0, 5, 'E'}
	in := slices.Concat(provoked, failed, commandComplete("SELECT 1"), failed)
	want := slices.Concat(commandComplete("SELECT 1"), failed)
	for skip := range len(in) {
		track := &tracker{status: 'T'}
		track.inject(abortTransaction)
		track.sent('Q', false)
		if out := relayUpstream(t, track, in, skip); !bytes.Equal(out, want) || track.pending() || track.status != 'E' {
			t.Fatalf("split at %d: output %q, still owed %v, status %q", skip, out, track.owed[track.head:], track.status)
		}
	}
}

func TestHasError(t *testing.T) {
	errMsg, _ := (&pgproto3.ErrorResponse{Severity: "ERROR", Code: "25001", Message: "no"}).Encode(nil)
	notice, _ := (&pgproto3.NoticeResponse{Severity: "NOTICE", Message: "hi"}).Encode(nil)
	for _, tc := range []struct {
		out  []byte
		want bool
	}{
		{nil, false},
		{commandComplete("CALL"), false},
		{slices.Concat(notice, errMsg), true},
		{slices.Concat(commandComplete("CALL"), notice), false},
		{errMsg, true},
	} {
		if got := hasError(tc.out); got != tc.want {
			t.Errorf("hasError(%q) = %v, want %v", tc.out, got, tc.want)
		}
	}
}
