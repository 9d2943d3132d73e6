package proxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// idleSessions is how many sessions BenchmarkIdleSession holds: each
// costs four descriptors in the benchmark's process.
const idleSessions = 2000

// BenchmarkIdleSession reports the heap an idle session holds in the proxy
// (B/session): the live heap with idleSessions clients logged in through
// a server to a fake upstream, less that with as many logged in to the
// fake upstream directly.
//
//	go test -run '^$' -bench IdleSession -benchtime 1x ./proxy/
func BenchmarkIdleSession(b *testing.B) {
	upstream := idleUpstream(b)
	srv := New(Config{Router: routeTo(upstream), Logger: slog.New(slog.DiscardHandler), Migrator: fakeMigrator{},
		StartupTimeout: 5 * time.Second, MaxMessageSize: 1 << 20, MaxClientConns: idleSessions})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx, ln)
	for range b.N {
		direct := liveHeapWith(b, upstream)
		proxied := liveHeapWith(b, ln.Addr().String())
		b.ReportMetric(float64(proxied-direct)/idleSessions, "B/session")
	}
}

// liveHeapWith logs idleSessions clients in at addr and returns the live
// heap while they are connected, after which it disconnects them.
func liveHeapWith(b *testing.B, addr string) uint64 {
	b.Helper()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		time.Sleep(100 * time.Millisecond) // for the sessions to end
	}()
	for range idleSessions {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, conn)
		fe := pgproto3.NewFrontend(conn, conn)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "u", "database": "acme"}})
		if err := fe.Flush(); err != nil {
			b.Fatal(err)
		}
		for {
			msg, err := fe.Receive()
			if err != nil {
				b.Fatal(err)
			}
			if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}
	}
	time.Sleep(100 * time.Millisecond) // for the sessions' goroutines to end
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// idleUpstream accepts any number of sessions, answers their startup and
// then waits for them to leave.
func idleUpstream(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				be := pgproto3.NewBackend(conn, conn)
				if _, err := be.ReceiveStartupMessage(); err != nil {
					return
				}
				be.Send(&pgproto3.AuthenticationOk{})
				be.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{1, 2, 3, 4}})
				be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
				be.Flush()
				io.Copy(io.Discard, conn)
			}()
		}
	}()
	return ln.Addr().String()
}
