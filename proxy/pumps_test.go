package proxy

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgmigrate/pgmigrate-proxy/intercept"
	"github.com/pgmigrate/pgmigrate-proxy/policy"
)

// The tests of this file drive the goroutine relay (relayPumps, the relay
// where there is no epoll) between a raw client and a scripted upstream,
// with a Migrator that takes "CALL migrate..." and refuses it inside a
// transaction block, as the real one does.

// fakeUpstream is one scripted PostgreSQL session: it answers the startup,
// then simple Queries (BEGIN, COMMIT, COPY ... FROM STDIN, a failing
// query, anything else as a one-row SELECT), keeping a transaction status.
// A query starting "hang" is never answered: the upstream closes instead.
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
		status := byte('I')
		send := func(msgs ...pgproto3.BackendMessage) {
			for _, m := range msgs {
				be.Send(m)
			}
			be.Flush()
		}
		send(&pgproto3.AuthenticationOk{}, &pgproto3.BackendKeyData{ProcessID: 4242, SecretKey: []byte{1, 2, 3, 4}}, &pgproto3.ReadyForQuery{TxStatus: status})
		for {
			msg, err := be.Receive()
			if err != nil {
				return
			}
			q, ok := msg.(*pgproto3.Query)
			if !ok {
				continue
			}
			switch sql := q.String; {
			case strings.HasPrefix(sql, "hang"):
				return
			case strings.HasPrefix(sql, "COPY"):
				send(&pgproto3.CopyInResponse{})
				if !copyIn(be) {
					// PostgreSQL ends the session on another message.
					send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "08P01", Message: "unexpected message type during COPY from stdin"})
					return
				}
				send(&pgproto3.CommandComplete{CommandTag: []byte("COPY 1")}, &pgproto3.ReadyForQuery{TxStatus: status})
			case status == 'E' && sql != "COMMIT":
				send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "25P02", Message: "current transaction is aborted"}, &pgproto3.ReadyForQuery{TxStatus: status})
			case strings.HasPrefix(sql, "pgmigrate-proxy:"):
				if status == 'T' {
					status = 'E'
				}
				send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42601", Message: "syntax error"}, &pgproto3.ReadyForQuery{TxStatus: status})
			case sql == "BEGIN":
				status = 'T'
				send(&pgproto3.CommandComplete{CommandTag: []byte("BEGIN")}, &pgproto3.ReadyForQuery{TxStatus: status})
			case sql == "COMMIT":
				tag := "COMMIT"
				if status == 'E' {
					tag = "ROLLBACK"
				}
				status = 'I'
				send(&pgproto3.CommandComplete{CommandTag: []byte(tag)}, &pgproto3.ReadyForQuery{TxStatus: status})
			default:
				send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("x"), DataTypeOID: 25, Format: 0}}},
					&pgproto3.DataRow{Values: [][]byte{[]byte("1")}}, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")},
					&pgproto3.ReadyForQuery{TxStatus: status})
			}
		}
	}()
	return ln.Addr().String()
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

func (fakeMigrator) Extended(context.Context, intercept.Session, *intercept.Conversation, [][]byte) []byte {
	return nil
}

// routeTo routes every session to one upstream address.
type routeTo string

func (r routeTo) Route(context.Context, policy.Request) (policy.Route, error) {
	return policy.Route{Org: "acme", Upstream: &policy.Target{Name: "fake", Network: "tcp", Address: string(r)}, Database: "acme", Schema: "acme"}, nil
}

// pumpedSession starts a server that relays with goroutines only, in
// front of a fake upstream, and returns a client logged in through it.
func pumpedSession(t *testing.T) *pgproto3.Frontend {
	t.Helper()
	srv := New(Config{Router: routeTo(fakeUpstream(t)), Logger: slog.New(slog.DiscardHandler), Migrator: fakeMigrator{},
		StartupTimeout: 5 * time.Second, MaxMessageSize: 1 << 20, MaxClientConns: 10})
	srv.pollers = nil
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
	return fe
}

// readUntilReady reads up to ReadyForQuery and returns what came, by
// type (an error as its code), the ReadyForQuery with its status.
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
		case *pgproto3.ReadyForQuery:
			return append(got, "Z"+string(m.TxStatus))
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
func TestPumpsFailTransaction(t *testing.T) {
	fe := pumpedSession(t)
	for _, step := range []struct{ sql, want string }{
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
}

// A migrate command sent behind a COPY FROM STDIN, in the same write, goes
// to the upstream as the copy's: the session ends as PostgreSQL ends it,
// and nothing hangs.
func TestPumpsCopyReleasesTaken(t *testing.T) {
	fe := pumpedSession(t)
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
}

// A migrate command waiting for the upstream to answer what came before
// it ends the session when the upstream goes away.
func TestPumpsUpstreamLostWhileWaiting(t *testing.T) {
	fe := pumpedSession(t)
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
}

// A migrate command sent after the end of a COPY FROM STDIN, in the same
// write, runs after the copy: it is answered by the proxy, not given to
// the upstream as the copy's.
func TestPumpsCommandAfterCopyEnd(t *testing.T) {
	fe := pumpedSession(t)
	for _, m := range []pgproto3.FrontendMessage{&pgproto3.Query{String: "COPY t FROM STDIN"}, &pgproto3.CopyData{Data: []byte("1\n")},
		&pgproto3.CopyDone{}, &pgproto3.Query{String: "CALL migrate.x()"}} {
		fe.Send(m)
	}
	fe.Flush()
	if got := strings.Join(readUntilReady(t, fe), " "); got != "COPY 1 ZI" {
		t.Fatalf("the copy: %s, want COPY 1 ZI", got)
	}
	if got := strings.Join(readUntilReady(t, fe), " "); got != "CALL ZI" {
		t.Fatalf("the command after the copy: %s, want the proxy's CALL ZI", got)
	}
}
