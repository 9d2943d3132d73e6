package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestMaxMessageSize sends messages on both sides of limits.max_message_size
// with the simple and the extended protocol.
func TestMaxMessageSize(t *testing.T) {
	const limit = 4096
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config("limits:\n  max_message_size: 4096\n"))
	other := p.connect(t, "postgres", "", "acme")

	protocols := []struct {
		name string
		// length sends a message of about size bytes that asks for the
		// length of a string of size bytes.
		length func(ctx context.Context, conn *pgx.Conn, size int) (int, error)
	}{
		{"simple", func(ctx context.Context, conn *pgx.Conn, size int) (int, error) {
			return queryInt(ctx, conn, "SELECT length('"+strings.Repeat("x", size)+"')", pgx.QueryExecModeSimpleProtocol)
		}},
		{"extended", func(ctx context.Context, conn *pgx.Conn, size int) (int, error) {
			return queryInt(ctx, conn, "SELECT length($1::text)", strings.Repeat("x", size))
		}},
	}
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			healthyDuring(t, other, func() {
				conn := p.connect(t, "postgres", "", "acme")
				const small = limit - 100
				if n, err := proto.length(t.Context(), conn, small); err != nil || n != small {
					t.Fatalf("message under the limit: got %d, %v", n, err)
				}
				_, err := proto.length(t.Context(), conn, limit+100)
				wantPgError(t, err, "54000")
				if _, err := queryInt(t.Context(), conn, "SELECT 1"); err == nil {
					t.Fatal("the session is still open after a message over the limit")
				}
			})
		})
	}
}

func TestMaxClientConns(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config("limits:\n  max_client_conns: 2\n"))
	first := p.connect(t, "postgres", "", "acme")
	second := p.connect(t, "postgres", "", "acme")
	expectTooMany(t, p)

	if err := first.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	var third *pgx.Conn
	waitFor(t, "a free connection slot", func() bool {
		conn, err := tryConnect(t, p, "postgres", "", "acme")
		if err != nil && sqlState(err) != "53300" {
			t.Fatalf("connect: %v", err)
		}
		third = conn
		return err == nil
	})
	mustWork(t, third)
	mustWork(t, second)
	expectTooMany(t, p)
}

// expectTooMany fails t unless a new client of p is refused for the
// connection limit.
func expectTooMany(t testing.TB, p *proxyProc) {
	t.Helper()
	_, err := tryConnect(t, p, "postgres", "", "acme")
	if pgErr := wantPgError(t, err, "53300"); pgErr.Message != "sorry, too many clients already" {
		t.Fatalf("connect over the limit: %v", err)
	}
}

// TestStartupTimeoutSparesEstablishedSessions checks that the startup
// timeout bounds only the startup: a session outlives it, while a client
// that stops halfway through its startup packet is dropped.
func TestStartupTimeoutSparesEstablishedSessions(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config("limits:\n  startup_timeout: 300ms\n"))
	c := dialRaw(t, p.addr)
	c.login("postgres", "acme")
	half := dialRaw(t, p.addr)
	half.write(startupPacket(t, 3<<16)[:6])
	half.expectClosed()
	if got := c.query("SELECT 'still here'"); len(got) != 1 || got[0] != "still here" {
		t.Fatalf("session after the startup timeout: got %q", got)
	}
}
