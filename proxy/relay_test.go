package proxy

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgmigrate/pgmigrate-proxy/intercept"
	"github.com/pgmigrate/pgmigrate-proxy/policy"
)

// The tests of this file drive both relays, the event loop (where the
// platform has one) and the goroutine pumps (relayPumps), between a raw
// client and a scripted upstream, with a Migrator that takes "CALL
// migrate..." and refuses it inside a transaction block, as the real one
// does.

// fakeUpstream is one scripted PostgreSQL session: it answers the startup,
// then simple Queries and extended-protocol pipelines (Parse, Bind,
// Describe, Execute, Flush, Sync), holding extended answers back until a
// Flush or Sync as PostgreSQL does. It knows BEGIN, COMMIT, ROLLBACK,
// SAVEPOINT, ROLLBACK TO, COPY ... FROM STDIN, COPY ... TO STDOUT and
// COPY BOTH (simple Queries only), INSERT (rows kept only when their
// transaction commits), "count" (one row: the rows kept), "fail" and
// the proxy's own failing statements (a syntax error), "LISTEN split"
// (after its ReadyForQuery, a notification sent in two halves 200 ms
// apart), and answers
// anything else as a one-row SELECT, keeping a transaction status; in a
// pipeline an error skips to the Sync, which rolls back the implicit
// transaction. A statement starting "hang" is never answered: the
// upstream closes instead.
func fakeUpstream(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		be := pgproto3.NewBackend(conn, conn)
		if _, err := be.ReceiveStartupMessage(); err != nil {
			return
		}
		(&fakeSession{be: be, conn: conn, status: 'I'}).serve()
	}()
	return ln.Addr().String()
}

// fakeSession is the state of fakeUpstream's session.
type fakeSession struct {
	be       *pgproto3.Backend
	conn     net.Conn
	status   byte
	stmt     string // the unnamed statement's text
	skipping bool   // an error in a pipeline: until Sync
	added    int    // rows inserted in the current transaction
	kept     int    // rows committed
}

func (f *fakeSession) send(msgs ...pgproto3.BackendMessage) {
	for _, m := range msgs {
		f.be.Send(m)
	}
}

func (f *fakeSession) ready() {
	if f.status == 'I' {
		f.kept, f.added = f.kept+f.added, 0
	}
	f.send(&pgproto3.ReadyForQuery{TxStatus: f.status})
	f.be.Flush()
}

func (f *fakeSession) serve() {
	f.send(&pgproto3.AuthenticationOk{}, &pgproto3.BackendKeyData{ProcessID: 4242, SecretKey: []byte{1, 2, 3, 4}})
	f.ready()
	for {
		msg, err := f.be.Receive()
		if err != nil {
			return
		}
		if _, ok := msg.(*pgproto3.Sync); ok {
			f.skipping = false
			f.ready()
			continue
		}
		if f.skipping {
			continue
		}
		switch m := msg.(type) {
		case *pgproto3.Query:
			if strings.HasPrefix(m.String, "COPY") {
				if !f.copy(m.String) {
					return
				}
			} else if !f.execute(m.String, true) {
				return
			}
			f.skipping = false
			f.ready()
			if m.String == "LISTEN split" {
				// A notification whose second half comes later.
				n, _ := (&pgproto3.NotificationResponse{PID: 4242, Channel: "split", Payload: "whole"}).Encode(nil)
				f.conn.Write(n[:len(n)/2])
				time.Sleep(200 * time.Millisecond)
				f.conn.Write(n[len(n)/2:])
			}
		case *pgproto3.Parse:
			f.stmt = m.Query
			f.send(&pgproto3.ParseComplete{})
		case *pgproto3.Bind:
			f.send(&pgproto3.BindComplete{})
		case *pgproto3.Describe:
			f.send(&pgproto3.NoData{})
		case *pgproto3.Execute:
			if !f.execute(f.stmt, false) {
				return
			}
		case *pgproto3.Flush:
			f.be.Flush()
		}
	}
}

// copy runs a COPY, and reports false when the session is to end
// instead.
func (f *fakeSession) copy(sql string) bool {
	switch {
	case strings.HasSuffix(sql, "TO STDOUT"):
		f.send(&pgproto3.CopyOutResponse{}, &pgproto3.CopyData{Data: []byte("1\n")}, &pgproto3.CopyDone{})
	case strings.HasSuffix(sql, "BOTH"):
		f.send(&pgproto3.CopyBothResponse{})
		f.be.Flush()
		if !copyIn(f.be) {
			return false
		}
		f.send(&pgproto3.CopyDone{})
	default:
		f.send(&pgproto3.CopyInResponse{})
		f.be.Flush()
		if !copyIn(f.be) {
			// PostgreSQL ends the session on another message.
			f.send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "08P01", Message: "unexpected message type during COPY from stdin"})
			f.be.Flush()
			return false
		}
	}
	f.send(&pgproto3.CommandComplete{CommandTag: []byte("COPY 1")})
	return true
}

// execute answers one statement, and reports false when the session is
// to end instead.
func (f *fakeSession) execute(sql string, simple bool) bool {
	fail := func(code string) {
		switch f.status {
		case 'T':
			f.status = 'E'
		case 'I':
			f.added = 0
		}
		f.skipping = !simple
		f.send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: code, Message: "failed"})
		f.be.Flush()
	}
	switch {
	case strings.HasPrefix(sql, "hang"):
		return false
	case f.status == 'E' && sql != "COMMIT" && !strings.HasPrefix(sql, "ROLLBACK"):
		fail("25P02")
	case sql == "fail" || strings.HasPrefix(sql, "pgmigrate-proxy:"):
		fail("42601")
	case sql == "BEGIN":
		f.status = 'T'
		f.send(&pgproto3.CommandComplete{CommandTag: []byte("BEGIN")})
	case sql == "COMMIT":
		tag := "COMMIT"
		if f.status == 'E' {
			tag, f.added = "ROLLBACK", 0
		}
		f.status = 'I'
		f.send(&pgproto3.CommandComplete{CommandTag: []byte(tag)})
	case sql == "ROLLBACK":
		f.status, f.added = 'I', 0
		f.send(&pgproto3.CommandComplete{CommandTag: []byte("ROLLBACK")})
	case strings.HasPrefix(sql, "SAVEPOINT"):
		f.send(&pgproto3.CommandComplete{CommandTag: []byte("SAVEPOINT")})
	case strings.HasPrefix(sql, "ROLLBACK TO"):
		f.status = 'T'
		f.send(&pgproto3.CommandComplete{CommandTag: []byte("ROLLBACK")})
	case strings.HasPrefix(sql, "INSERT"):
		f.added++
		f.send(&pgproto3.CommandComplete{CommandTag: []byte("INSERT 0 1")})
	default:
		if simple {
			f.send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("x"), DataTypeOID: 25, Format: 0}}})
		}
		n := "1"
		if sql == "count" {
			n = strconv.Itoa(f.kept)
		}
		f.send(&pgproto3.DataRow{Values: [][]byte{[]byte(n)}}, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
	}
	return true
}

// copyIn reads a copy's data up to its CopyDone, and reports false at any
// other message.
func copyIn(be *pgproto3.Backend) bool {
	for {
		switch msg, err := be.Receive(); msg.(type) {
		case *pgproto3.CopyData:
		case *pgproto3.CopyDone:
			return err == nil
		default:
			return false
		}
	}
}

// fakeMigrator takes "CALL migrate..." texts and answers them "CALL", or
// 25001 inside a transaction block.
type fakeMigrator struct{}

func (fakeMigrator) Take(sql []byte, _ bool) intercept.Verdict {
	if strings.HasPrefix(string(sql), "CALL migrate") {
		return intercept.Answer
	}
	return intercept.Pass
}

func (fakeMigrator) Audit(context.Context, intercept.Session, []byte) bool { return true }

func (fakeMigrator) Query(_ context.Context, sess intercept.Session, _ string) []byte {
	var out []byte
	if sess.InTransaction {
		out, _ = (&pgproto3.ErrorResponse{Severity: "ERROR", Code: "25001", Message: "in a transaction block"}).Encode(out)
		return out
	}
	out, _ = (&pgproto3.CommandComplete{CommandTag: []byte("CALL")}).Encode(out)
	return out
}

// Extended answers each migrate message as PostgreSQL would a CALL's.
func (fakeMigrator) Extended(_ context.Context, sess intercept.Session, _ *intercept.Conversation, msgs [][]byte) []byte {
	var out []byte
	for _, m := range msgs {
		var answer pgproto3.BackendMessage
		switch m[0] {
		case 'P':
			answer = &pgproto3.ParseComplete{}
		case 'B':
			answer = &pgproto3.BindComplete{}
		case 'D':
			answer = &pgproto3.NoData{}
		case 'E':
			answer = &pgproto3.CommandComplete{CommandTag: []byte("CALL")}
			if sess.InTransaction {
				answer = &pgproto3.ErrorResponse{Severity: "ERROR", Code: "25001", Message: "in a transaction block"}
			}
		default:
			continue
		}
		out, _ = answer.Encode(out)
	}
	return out
}

// routeTo routes every session to one upstream address.
type routeTo string

func (r routeTo) Route(context.Context, policy.Request) (policy.Route, error) {
	return policy.Route{Org: "acme", Upstream: &policy.Target{Name: "fake", Network: "tcp", Address: string(r)}, Database: "acme", Schema: "acme"}, nil
}

// forEachRelay runs test on a client logged in through a server in front
// of a fake upstream, once for each relay: the event loop, where the
// platform has one, and the goroutine pumps.
func forEachRelay(t *testing.T, test func(t *testing.T, fe *pgproto3.Frontend, conn net.Conn)) {
	for _, relay := range []string{"loop", "pumps"} {
		t.Run(relay, func(t *testing.T) {
			_, fe, conn := relayedSession(t, relay == "pumps")
			test(t, fe, conn)
		})
	}
}

// relayedSession starts a server in front of a fake upstream, relaying
// with the goroutine pumps only if pumps is set, and returns it and a
// client logged in through it.
func relayedSession(t *testing.T, pumps bool) (*Server, *pgproto3.Frontend, net.Conn) {
	t.Helper()
	srv := New(Config{Router: routeTo(fakeUpstream(t)), Logger: slog.New(slog.DiscardHandler), Migrator: fakeMigrator{},
		StartupTimeout: 5 * time.Second, MaxMessageSize: 1 << 20, MaxClientConns: 10})
	if pumps {
		srv.pollers = nil
	} else if len(srv.pollers) == 0 {
		t.Skip("no event loop on this platform")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go srv.Serve(ctx, ln)
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "u", "database": "acme"}})
	fe.Flush()
	readUntilReady(t, fe)
	return srv, fe, conn
}

// readUntilReady reads up to ReadyForQuery and returns what came: an
// error as its code, a CommandComplete as its tag, a DataRow as its
// values, any other message as its type, the ReadyForQuery with its
// status.
func readUntilReady(t *testing.T, fe *pgproto3.Frontend) []string {
	t.Helper()
	var got []string
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("receive after %q: %v", got, err)
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			got = append(got, m.Code)
		case *pgproto3.CommandComplete:
			got = append(got, string(m.CommandTag))
		case *pgproto3.DataRow:
			got = append(got, "D"+string(bytes.Join(m.Values, []byte(","))))
		case *pgproto3.ReadyForQuery:
			return append(got, "Z"+string(m.TxStatus))
		default:
			got = append(got, fmt.Sprintf("%T", m)[len("*pgproto3."):])
		}
	}
}

// query sends a simple Query and returns what comes back.
func query(t *testing.T, fe *pgproto3.Frontend, sql string) string {
	t.Helper()
	fe.Send(&pgproto3.Query{String: sql})
	fe.Flush()
	return strings.Join(readUntilReady(t, fe), " ")
}

// A migrate command refused inside a transaction block fails the
// upstream's transaction, whose COMMIT then rolls back.
func TestRelayFailTransaction(t *testing.T) {
	forEachRelay(t, func(t *testing.T, fe *pgproto3.Frontend, _ net.Conn) {
		for _, step := range []struct{ sql, want string }{
			{"CALL migrate.x()", "CALL ZI"}, // first: nothing read since the startup
			{"BEGIN", "BEGIN ZT"},
			{"CALL migrate.x()", "25001 ZE"},
			{"SELECT 1", "25P02 ZE"},
			{"COMMIT", "ROLLBACK ZI"},
			{"CALL migrate.x()", "CALL ZI"},
		} {
			if got := query(t, fe, step.sql); got != step.want {
				t.Fatalf("%s: %s, want %s", step.sql, got, step.want)
			}
		}
	})
}

// A migrate command sent behind a COPY FROM STDIN, in the same write, goes
// to the upstream as the copy's: the session ends as PostgreSQL ends it,
// and nothing hangs.
func TestRelayCopyReleasesTaken(t *testing.T) {
	forEachRelay(t, func(t *testing.T, fe *pgproto3.Frontend, _ net.Conn) {
		for _, m := range []pgproto3.FrontendMessage{&pgproto3.Query{String: "COPY t FROM STDIN"}, &pgproto3.Query{String: "CALL migrate.x()"}, &pgproto3.CopyData{Data: []byte("1\n")}} {
			fe.Send(m)
		}
		fe.Flush()
		var got []string
		for {
			msg, err := fe.Receive()
			if err != nil {
				break
			}
			switch m := msg.(type) {
			case *pgproto3.CopyInResponse:
				got = append(got, "G")
			case *pgproto3.ErrorResponse:
				got = append(got, m.Severity+" "+m.Code)
			}
		}
		if strings.Join(got, " ") != "G FATAL 08P01" {
			t.Fatalf("got %q, want the copy's start, then PostgreSQL's FATAL", got)
		}
	})
}

// A migrate command waiting for the upstream to answer what came before
// it ends the session when the upstream goes away.
func TestRelayUpstreamLostWhileWaiting(t *testing.T) {
	forEachRelay(t, func(t *testing.T, fe *pgproto3.Frontend, _ net.Conn) {
		fe.Send(&pgproto3.Query{String: "hang"})
		fe.Send(&pgproto3.Query{String: "CALL migrate.x()"})
		fe.Flush()
		var codes []string
		for {
			msg, err := fe.Receive()
			if err != nil {
				break
			}
			if e, ok := msg.(*pgproto3.ErrorResponse); ok {
				codes = append(codes, e.Code)
			}
		}
		if strings.Join(codes, " ") != "08006" {
			t.Fatalf("errors %q, want 08006 (upstream lost)", codes)
		}
	})
}

// A migrate command sent after the end of a COPY FROM STDIN, in the same
// write, runs after the copy: it is answered by the proxy, not given to
// the upstream as the copy's.
func TestRelayCommandAfterCopyEnd(t *testing.T) {
	forEachRelay(t, func(t *testing.T, fe *pgproto3.Frontend, _ net.Conn) {
		for _, m := range []pgproto3.FrontendMessage{&pgproto3.Query{String: "COPY t FROM STDIN"}, &pgproto3.CopyData{Data: []byte("1\n")},
			&pgproto3.CopyDone{}, &pgproto3.Query{String: "CALL migrate.x()"}} {
			fe.Send(m)
		}
		fe.Flush()
		if got := strings.Join(readUntilReady(t, fe), " "); got != "CopyInResponse COPY 1 ZI" {
			t.Fatalf("the copy: %s, want CopyInResponse COPY 1 ZI", got)
		}
		if got := strings.Join(readUntilReady(t, fe), " "); got != "CALL ZI" {
			t.Fatalf("the command after the copy: %s, want the proxy's CALL ZI", got)
		}
	})
}

// encode encodes client messages into one write.
func encode(msgs ...pgproto3.FrontendMessage) []byte {
	var out []byte
	for _, m := range msgs {
		out, _ = m.Encode(out)
	}
	return out
}

// pipeline is Parse, Bind, Execute of sql.
func pipeline(sql string) []pgproto3.FrontendMessage {
	return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: sql}, &pgproto3.Bind{}, &pgproto3.Execute{}}
}

// A Query's ReadyForQuery settles that Query only: a migrate command
// pipelined after it and after ordinary extended messages is answered
// after those, whose answers the upstream holds until the Sync, wherever
// the write is split.
func TestRelayQueryThenPipeline(t *testing.T) {
	msgs := append([]pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 1"}}, pipeline("SELECT 2")...)
	msgs = append(append(msgs, pipeline("CALL migrate.x()")...), &pgproto3.Sync{})
	in := encode(msgs...)
	forEachRelay(t, func(t *testing.T, fe *pgproto3.Frontend, conn net.Conn) {
		for split := range len(in) + 1 {
			writeSplit(t, conn, in, split)
			if got := strings.Join(readUntilReady(t, fe), " "); got != "RowDescription D1 SELECT 1 ZI" {
				t.Fatalf("split at %d: the Query: %s", split, got)
			}
			if got := strings.Join(readUntilReady(t, fe), " "); got != "ParseComplete BindComplete D1 SELECT 1 ParseComplete BindComplete CALL ZI" {
				t.Fatalf("split at %d: the pipeline: %s", split, got)
			}
		}
	})
}

// writeSplit writes in in two writes, split at split.
func writeSplit(t *testing.T, conn net.Conn, in []byte, split int) {
	t.Helper()
	for _, part := range [][]byte{in[:split], in[split:]} {
		if len(part) == 0 {
			continue
		}
		if _, err := conn.Write(part); err != nil {
			t.Fatal(err)
		}
		// Let the first part arrive on its own.
		time.Sleep(100 * time.Microsecond)
	}
}

// Transaction control pipelined before a migrate command, in the same
// Sync, decides whether it runs inside a transaction block (refused, 25001)
// as it would in PostgreSQL: a BEGIN puts it in one, a COMMIT or ROLLBACK
// takes it out, a SAVEPOINT and a ROLLBACK TO SAVEPOINT leave it in.
func TestRelayPipelinedTransactionControl(t *testing.T) {
	forEachRelay(t, func(t *testing.T, fe *pgproto3.Frontend, conn net.Conn) {
		for _, tc := range []struct {
			stmts []string
			want  string
		}{
			{[]string{"BEGIN", "CALL migrate.x()"}, "BEGIN 25001 ZT"},
			{[]string{"COMMIT", "CALL migrate.x()"}, "COMMIT CALL ZI"},
			{[]string{"BEGIN", "ROLLBACK", "CALL migrate.x()"}, "BEGIN ROLLBACK CALL ZI"},
			{[]string{"BEGIN", "SAVEPOINT s", "CALL migrate.x()"}, "BEGIN SAVEPOINT 25001 ZT"},
			{[]string{"ROLLBACK TO SAVEPOINT s", "CALL migrate.x()"}, "ROLLBACK 25001 ZT"},
			{[]string{"COMMIT", "CALL migrate.x()"}, "COMMIT CALL ZI"},
		} {
			var msgs []pgproto3.FrontendMessage
			var want []string
			for _, sql := range tc.stmts {
				msgs = append(msgs, pipeline(sql)...)
				want = append(want, "ParseComplete BindComplete")
			}
			if _, err := conn.Write(encode(append(msgs, &pgproto3.Sync{})...)); err != nil {
				t.Fatal(err)
			}
			got := strings.ReplaceAll(strings.Join(readUntilReady(t, fe), " "), "ParseComplete BindComplete ", "")
			if got != tc.want {
				t.Fatalf("%q: %s, want %s", tc.stmts, got, tc.want)
			}
		}
	})
}

// A migrate command behind ordinary extended messages and a Flush, with
// no Sync, is answered after them: the proxy has the upstream flush what
// it holds.
func TestRelayFlushWithoutSync(t *testing.T) {
	forEachRelay(t, func(t *testing.T, fe *pgproto3.Frontend, conn net.Conn) {
		msgs := append(pipeline("SELECT 2"), pipeline("CALL migrate.x()")...)
		if _, err := conn.Write(encode(append(msgs, &pgproto3.Flush{})...)); err != nil {
			t.Fatal(err)
		}
		var got []string
		for len(got) < 7 {
			msg, err := fe.Receive()
			if err != nil {
				t.Fatalf("after %q: %v", got, err)
			}
			got = append(got, fmt.Sprintf("%T", msg)[len("*pgproto3."):])
		}
		if want := "ParseComplete BindComplete DataRow CommandComplete ParseComplete BindComplete CommandComplete"; strings.Join(got, " ") != want {
			t.Fatalf("before the Sync: %q, want %s", got, want)
		}
		if _, err := conn.Write(encode(&pgproto3.Sync{})); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(readUntilReady(t, fe), " "); got != "ZI" {
			t.Fatalf("the Sync: %s", got)
		}
	})
}

// An error in a pipeline skips the rest of it up to the Sync, migrate
// messages included, wherever it falls, and rolls back the implicit
// transaction; the next pipeline runs.
func TestRelayErrorsInPipeline(t *testing.T) {
	steps := []string{"INSERT 1", "CALL migrate.x()", "INSERT 2", "CALL migrate.y()"}
	forEachRelay(t, func(t *testing.T, fe *pgproto3.Frontend, conn net.Conn) {
		for at := range len(steps) + 1 {
			var msgs []pgproto3.FrontendMessage
			var want []string
			for i, sql := range slices.Insert(slices.Clone(steps), at, "fail") {
				msgs = append(msgs, pipeline(sql)...)
				switch {
				case i < at && strings.HasPrefix(sql, "CALL"):
					want = append(want, "ParseComplete BindComplete CALL")
				case i < at:
					want = append(want, "ParseComplete BindComplete INSERT 0 1")
				case i == at:
					want = append(want, "ParseComplete BindComplete 42601")
				}
			}
			if _, err := conn.Write(encode(append(msgs, &pgproto3.Sync{}, &pgproto3.Query{String: "count"})...)); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(readUntilReady(t, fe), " "); got != strings.Join(append(want, "ZI"), " ") {
				t.Fatalf("error at %d: %s", at, got)
			}
			if got := strings.Join(readUntilReady(t, fe), " "); got != "RowDescription D0 SELECT 1 ZI" {
				t.Fatalf("error at %d: rows kept: %s", at, got)
			}
		}
	})
}

// A migrate command sent behind a COPY TO STDOUT, or behind the end of a
// COPY BOTH, in the same write, is answered after the copy.
func TestRelayCommandAfterCopyOutAndBoth(t *testing.T) {
	forEachRelay(t, func(t *testing.T, fe *pgproto3.Frontend, conn net.Conn) {
		for _, tc := range []struct {
			msgs []pgproto3.FrontendMessage
			want string
		}{
			{[]pgproto3.FrontendMessage{&pgproto3.Query{String: "COPY t TO STDOUT"}}, "CopyOutResponse CopyData CopyDone COPY 1 ZI"},
			{[]pgproto3.FrontendMessage{&pgproto3.Query{String: "COPY BOTH"}, &pgproto3.CopyData{Data: []byte("CALL migrate.x()")}, &pgproto3.CopyDone{}},
				"CopyBothResponse CopyDone COPY 1 ZI"},
		} {
			if _, err := conn.Write(encode(append(tc.msgs, &pgproto3.Query{String: "CALL migrate.x()"})...)); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(readUntilReady(t, fe), " "); got != tc.want {
				t.Fatalf("the copy: %s, want %s", got, tc.want)
			}
			if got := strings.Join(readUntilReady(t, fe), " "); got != "CALL ZI" {
				t.Fatalf("the command after the copy: %s, want the proxy's CALL ZI", got)
			}
		}
	})
}

// A Query sent after a failing message of a pipeline and before its Sync
// is ignored by the upstream, which answers it nothing: a migrate command
// after the Sync does not wait for that answer.
func TestRelayQueryIgnoredBeforeSync(t *testing.T) {
	forEachRelay(t, func(t *testing.T, fe *pgproto3.Frontend, conn net.Conn) {
		msgs := append(pipeline("fail"), &pgproto3.Query{String: "SELECT 1"}, &pgproto3.Sync{}, &pgproto3.Query{String: "CALL migrate.x()"})
		if _, err := conn.Write(encode(msgs...)); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(readUntilReady(t, fe), " "); got != "ParseComplete BindComplete 42601 ZI" {
			t.Fatalf("the pipeline: %s", got)
		}
		if got := strings.Join(readUntilReady(t, fe), " "); got != "CALL ZI" {
			t.Fatalf("the command after it: %s", got)
		}
	})
}

// A migrate command sent while an upstream message is half passed on (an
// asynchronous notification) is answered after the whole of it.
func TestRelayAnswerAfterHalfMessage(t *testing.T) {
	forEachRelay(t, func(t *testing.T, fe *pgproto3.Frontend, conn net.Conn) {
		if got := query(t, fe, "LISTEN split"); got != "RowDescription D1 SELECT 1 ZI" {
			t.Fatalf("LISTEN split: %s", got)
		}
		time.Sleep(50 * time.Millisecond) // the first half is passed on
		if got := query(t, fe, "CALL migrate.x()"); got != "NotificationResponse CALL ZI" {
			t.Fatalf("the command: %s, want the whole notification first", got)
		}
	})
}

// A session that sends a message over the size limit is ended with 54000,
// its buffers given back once (go test -race).
func TestRelayEndsOnTooLarge(t *testing.T) {
	forEachRelay(t, func(t *testing.T, fe *pgproto3.Frontend, conn net.Conn) {
		if _, err := conn.Write([]byte{'Q', 0x7f, 0, 0, 0}); err != nil {
			t.Fatal(err)
		}
		var codes []string
		for {
			msg, err := fe.Receive()
			if err != nil {
				break
			}
			if e, ok := msg.(*pgproto3.ErrorResponse); ok {
				codes = append(codes, e.Code)
			}
		}
		if strings.Join(codes, " ") != "54000" {
			t.Fatalf("errors %q, want 54000", codes)
		}
	})
}
