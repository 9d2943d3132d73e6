package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// rawConn is a client connection driven message by message.
type rawConn struct {
	t    testing.TB
	conn net.Conn
	fe   *pgproto3.Frontend
}

// dialRaw opens a TCP connection to addr, closed when t ends. Its whole
// life is bounded by timeout, so a proxy that never answers fails the test
// instead of hanging it.
func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(timeout))
	return &rawConn{t: t, conn: conn, fe: pgproto3.NewFrontend(conn, conn)}
}

// rawOf speaks the protocol by hand on conn's connection, logged in
// already, with the same deadline as dialRaw's.
func rawOf(t testing.TB, conn *pgx.Conn) *rawConn {
	t.Helper()
	nc := conn.PgConn().Conn()
	nc.SetDeadline(time.Now().Add(timeout))
	return &rawConn{t: t, conn: nc, fe: pgproto3.NewFrontend(nc, nc)}
}

// write sends b as it is.
func (c *rawConn) write(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// send encodes and sends msg.
func (c *rawConn) send(msg pgproto3.FrontendMessage) {
	c.t.Helper()
	b, err := msg.Encode(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.write(b)
}

// startup sends a protocol 3.0 StartupMessage for user and database.
func (c *rawConn) startup(user, database string) {
	c.t.Helper()
	c.send(&pgproto3.StartupMessage{
		ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters:      map[string]string{"user": user, "database": database},
	})
}

// login starts a session for a user that needs no password and waits
// until it is ready for queries.
func (c *rawConn) login(user, database string) {
	c.t.Helper()
	c.startup(user, database)
	c.expectReady()
}

// readByte reads the one-byte answer to SSLRequest or GSSENCRequest. It
// must come before any receive.
func (c *rawConn) readByte() byte {
	c.t.Helper()
	var b [1]byte
	if _, err := io.ReadFull(c.conn, b[:]); err != nil {
		c.t.Fatalf("reading the answer byte: %v", err)
	}
	return b[0]
}

// receive returns the next backend message, valid until the next receive.
func (c *rawConn) receive() pgproto3.BackendMessage {
	c.t.Helper()
	msg, err := c.fe.Receive()
	if err != nil {
		c.t.Fatalf("receive: %v", err)
	}
	return msg
}

// expectReady reads messages up to ReadyForQuery and fails on an error.
func (c *rawConn) expectReady() {
	c.t.Helper()
	for {
		switch msg := c.receive().(type) {
		case *pgproto3.ReadyForQuery:
			return
		case *pgproto3.ErrorResponse:
			c.t.Fatalf("unexpected error: %s %s: %s", msg.Severity, msg.Code, msg.Message)
		}
	}
}

// query runs sql with the simple protocol and returns the first column of
// each row.
func (c *rawConn) query(sql string) []string {
	c.t.Helper()
	c.send(&pgproto3.Query{String: sql})
	var rows []string
	for {
		switch msg := c.receive().(type) {
		case *pgproto3.DataRow:
			rows = append(rows, string(msg.Values[0]))
		case *pgproto3.ReadyForQuery:
			return rows
		case *pgproto3.ErrorResponse:
			c.t.Fatalf("query %q: %s %s: %s", sql, msg.Severity, msg.Code, msg.Message)
		}
	}
}

// expectFatal reads messages until an ErrorResponse, which must be FATAL
// with code, and then expects the connection to close.
func (c *rawConn) expectFatal(code string) {
	c.t.Helper()
	for {
		msg := c.receive()
		er, ok := msg.(*pgproto3.ErrorResponse)
		if !ok {
			continue
		}
		if er.Severity != "FATAL" || er.Code != code {
			c.t.Fatalf("got %s %s (%s), want FATAL %s", er.Severity, er.Code, er.Message, code)
		}
		c.expectClosed()
		return
	}
}

// expectClosed fails unless the peer closes the connection without sending
// anything more.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	msg, err := c.fe.Receive()
	if err == nil {
		c.t.Fatalf("got %T, want the connection closed", msg)
	}
	if !isClosedErr(err) {
		c.t.Fatalf("want the connection closed, got %v", err)
	}
}

// expectRefused expects at most one FATAL ErrorResponse and then the
// connection closed.
func (c *rawConn) expectRefused() {
	c.t.Helper()
	msg, err := c.fe.Receive()
	if err != nil {
		if !isClosedErr(err) {
			c.t.Fatalf("want a FATAL error or the connection closed, got %v", err)
		}
		return
	}
	if er, ok := msg.(*pgproto3.ErrorResponse); !ok || er.Severity != "FATAL" {
		c.t.Fatalf("want a FATAL error or the connection closed, got %#v", msg)
	}
	c.expectClosed()
}

// isClosedErr reports whether err from a read means the peer closed the
// connection (as opposed to a timeout).
func isClosedErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// closeWrite tells the proxy the client will send nothing more.
func (c *rawConn) closeWrite() {
	c.t.Helper()
	if err := c.conn.(*net.TCPConn).CloseWrite(); err != nil {
		c.t.Fatal(err)
	}
}

// startupPacket is a StartupMessage for postgres claiming version.
func startupPacket(t testing.TB, version uint32) []byte {
	t.Helper()
	b, err := (&pgproto3.StartupMessage{ProtocolVersion: version, Parameters: map[string]string{"user": "postgres"}}).Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// messageHeader is the five-byte header of a typed message whose length
// field (which counts itself) is length.
func messageHeader(typ byte, length uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{typ}, length)
}

// untypedPacket is a startup-phase packet: a length field (which counts
// itself) of length, then code.
func untypedPacket(length, code uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, length), code)
}

// sqlState returns the SQLSTATE of err, or "" when it carries none.
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// queryInt runs sql, which returns one integer, within timeout.
func queryInt(ctx context.Context, conn *pgx.Conn, sql string, args ...any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var n int
	err := conn.QueryRow(ctx, sql, args...).Scan(&n)
	return n, err
}

// mustWork fails t unless conn answers a query.
func mustWork(t testing.TB, conn *pgx.Conn) {
	t.Helper()
	if n := queryValue[int](t, conn, "SELECT 41 + 1"); n != 42 {
		t.Fatalf("SELECT 41 + 1 = %d", n)
	}
}

// healthyDuring runs fn while conn keeps answering queries: one before fn,
// a stream of them while fn runs and one after.
func healthyDuring(t *testing.T, conn *pgx.Conn, fn func()) {
	t.Helper()
	mustWork(t, conn)
	stop := make(chan struct{})
	failed := make(chan error, 1)
	go func() {
		defer close(failed)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := queryInt(t.Context(), conn, "SELECT 1"); err != nil {
				failed <- err
				return
			}
		}
	}()
	// Stop the queries before anything else uses conn, even when fn ends
	// the test early.
	stopQueries := sync.OnceFunc(func() {
		close(stop)
		if err := <-failed; err != nil {
			t.Errorf("healthy session failed meanwhile: %v", err)
		}
	})
	defer stopQueries()
	fn()
	stopQueries()
	mustWork(t, conn)
}

// tryConnect opens a pgx connection through p, closed when t ends, or
// returns why it could not.
func tryConnect(t testing.TB, p *proxyProc, user, password, database string, params ...string) (*pgx.Conn, error) {
	t.Helper()
	conn, err := pgx.Connect(testContext(t), p.url(user, password, database, params...))
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn, nil
}

// takeClusterDown stops the cluster with stop (cluster.Stop or
// cluster.Kill) and returns a function that starts it again; if the test
// does not call it, t.Cleanup does.
func takeClusterDown(t testing.TB, stop func(context.Context) error) (restart func()) {
	t.Helper()
	down := true
	restart = func() {
		if !down {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := cluster.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		down = false
	}
	t.Cleanup(restart)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := stop(ctx); err != nil {
		t.Fatal(err)
	}
	return restart
}

// tcpForwarder relays TCP connections to a target address. It counts the
// connections it accepts and can cut every relayed connection at once, like
// a server that dies, while it goes on accepting new ones.
type tcpForwarder struct {
	ln       net.Listener
	target   string
	accepted atomic.Int64
	wg       sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// startForwarder relays to target until t ends.
func startForwarder(t testing.TB, target string) *tcpForwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &tcpForwarder{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		f.closed = true
		f.mu.Unlock()
		f.cut()
		f.wg.Wait()
	})
	return f
}

func (f *tcpForwarder) serve() {
	defer f.wg.Done()
	for {
		in, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.accepted.Add(1)
		out, err := net.Dial("tcp", f.target)
		if err != nil {
			in.Close()
			continue
		}
		if !f.track(in, out) {
			in.Close()
			out.Close()
			return
		}
		go f.pipe(out, in)
		go f.pipe(in, out)
	}
}

// pipe copies src to dst, then closes both.
func (f *tcpForwarder) pipe(dst, src net.Conn) {
	defer f.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
	f.mu.Lock()
	delete(f.conns, dst)
	delete(f.conns, src)
	f.mu.Unlock()
}

// track registers a relayed pair, unless the forwarder is closed.
func (f *tcpForwarder) track(in, out net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[in] = struct{}{}
	f.conns[out] = struct{}{}
	f.wg.Add(2)
	return true
}

// cut closes every connection being relayed.
func (f *tcpForwarder) cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
}

// addr is the address the forwarder listens on.
func (f *tcpForwarder) addr() string { return f.ln.Addr().String() }

// dsn is the cluster's DSN for user and database, through the forwarder.
func (f *tcpForwarder) dsn(user, database string) string {
	return strings.Replace(cluster.DSN(user, database), cluster.Addr(), f.addr(), 1)
}

// waitFor polls cond until it holds, failing t after a generous bound.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
