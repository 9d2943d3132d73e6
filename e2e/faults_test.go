package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestBadClientInput sends malformed and unusual input from raw clients
// while a healthy session on the same proxy keeps working.
func TestBadClientInput(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config("limits:\n  startup_timeout: 300ms\n"))
	healthy := p.connect(t, "postgres", "", "acme")

	t.Run("random first packet", func(t *testing.T) {
		healthyDuring(t, healthy, func() {
			for seed := range 8 {
				junk := make([]byte, 256)
				rand.NewChaCha8([32]byte{byte(seed)}).Read(junk)
				c := dialRaw(t, p.addr)
				c.write(junk)
				c.closeWrite()
				c.expectRefused()
			}
		})
	})

	startups := []struct {
		name   string
		packet []byte
		code   string
	}{
		{"protocol 2.0", startupPacket(t, 2<<16), "0A000"},
		{"protocol 4.0", startupPacket(t, 4<<16), "0A000"},
	}
	for _, tc := range startups {
		t.Run("startup "+tc.name, func(t *testing.T) {
			healthyDuring(t, healthy, func() {
				c := dialRaw(t, p.addr)
				c.write(tc.packet)
				c.expectFatal(tc.code)
			})
		})
	}

	// PostgreSQL closes these without a word (it only logs them), and so
	// does the proxy: a Terminate or the connection's end before the
	// startup packet is whole, a startup packet of an invalid length.
	silent := []struct {
		name  string
		bytes []byte
	}{
		{"Terminate", []byte{'X', 0, 0, 0, 4}},
		{"half a length", []byte{0, 0}},
		{"half a packet", untypedPacket(16, pgproto3.ProtocolVersion30)},
		{"length below 8", untypedPacket(4, 0)},
		{"length above 10000", untypedPacket(10001, pgproto3.ProtocolVersion30)},
	}
	for _, tc := range silent {
		t.Run("closed silently on "+tc.name, func(t *testing.T) {
			for _, addr := range []string{cluster.Addr(), p.addr} {
				c := dialRaw(t, addr)
				c.write(tc.bytes)
				c.closeWrite()
				c.expectClosed()
			}
		})
	}

	headers := []struct {
		name   string
		length uint32
		code   string
	}{
		{"2 GiB", 0x80000000, "54000"},
		{"3", 3, "08P01"},
	}
	for _, tc := range headers {
		t.Run("message length "+tc.name, func(t *testing.T) {
			healthyDuring(t, healthy, func() {
				c := dialRaw(t, p.addr)
				c.login("postgres", "acme")
				c.write(messageHeader('Q', tc.length))
				c.expectFatal(tc.code)
			})
		})
	}

	t.Run("silent client dropped after startup_timeout", func(t *testing.T) {
		healthyDuring(t, healthy, func() {
			dialRaw(t, p.addr).expectClosed()
		})
	})

	encryption := []struct {
		name     string
		requests []pgproto3.FrontendMessage
	}{
		{"SSLRequest", []pgproto3.FrontendMessage{&pgproto3.SSLRequest{}}},
		{"GSSENCRequest", []pgproto3.FrontendMessage{&pgproto3.GSSEncRequest{}}},
		{"GSSENCRequest then SSLRequest", []pgproto3.FrontendMessage{&pgproto3.GSSEncRequest{}, &pgproto3.SSLRequest{}}},
	}
	for _, tc := range encryption {
		t.Run(tc.name+" refused then plain startup", func(t *testing.T) {
			healthyDuring(t, healthy, func() {
				c := dialRaw(t, p.addr)
				for _, req := range tc.requests {
					c.send(req)
					if b := c.readByte(); b != 'N' {
						t.Fatalf("answer to %T = %q, want 'N'", req, b)
					}
				}
				c.login("postgres", "acme")
				if got := c.query("SELECT current_schema()"); !slices.Equal(got, []string{"acme"}) {
					t.Fatalf("current_schema = %q", got)
				}
			})
		})
	}
}

func TestUnknownOrgOpensNoUpstreamConnection(t *testing.T) {
	tn := newTenants(t, "acme")
	upstream := startForwarder(t, cluster.Addr())
	p := startProxy(t, strings.ReplaceAll(tn.config(""), cluster.Addr(), upstream.addr()))

	before := upstream.accepted.Load()
	attempts := []struct {
		database string
		params   []string
	}{
		{"nope", nil},
		{"", []string{"options", "-c pgmigrate.org=nope"}},
	}
	for _, a := range attempts {
		_, err := tryConnect(t, p, "postgres", "", a.database, a.params...)
		if pgErr := wantPgError(t, err, "3D000"); pgErr.Message != `database "nope" does not exist` {
			t.Fatalf("connect to org nope: %v", err)
		}
	}
	if n := upstream.accepted.Load() - before; n != 0 {
		t.Fatalf("unknown org opened %d upstream connections", n)
	}

	mustWork(t, p.connect(t, "postgres", "", "acme"))
	if upstream.accepted.Load() == before {
		t.Fatal("a session of acme did not go through the counting upstream")
	}
}

// TestUpstreamKilled crashes PostgreSQL under a busy and an idle session.
func TestUpstreamKilled(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	busy := p.connect(t, "postgres", "", "acme")
	idle := p.connect(t, "postgres", "", "acme")
	mustWork(t, idle)

	sleeping := sleepInBackground(busy)
	waitRunning(t, tn.db, sleep60)
	restart := takeClusterDown(t, cluster.Kill)

	expectUpstreamLost(t, "busy session", <-sleeping)
	_, err := queryInt(t.Context(), idle, "SELECT 1")
	expectUpstreamLost(t, "idle session", err)
	expectRunning(t, p)
	_, err = tryConnect(t, p, "postgres", "", "acme")
	if pgErr := wantPgError(t, err, "08006"); !strings.Contains(pgErr.Detail, "connection refused") {
		t.Errorf("upstream connect error DETAIL = %q, want the reason", pgErr.Detail)
	}

	restart()
	expectRunning(t, p)
	mustWork(t, p.connect(t, "postgres", "", "acme"))
}

// TestClientGoneMidResult resets a client's connection while the proxy is
// held up sending it a large result: that session ends, others carry on.
func TestClientGoneMidResult(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	healthy := p.connect(t, "postgres", "", "acme")
	healthyDuring(t, healthy, func() {
		gone := dialRaw(t, p.addr)
		gone.login("postgres", "acme")
		gone.send(&pgproto3.Query{String: "SELECT repeat('x', 1000) FROM generate_series(1, 100000)"})
		waitFor(t, "the result to fill the client's socket", func() bool {
			return metrics(t, p)[metricBytesDown] > 1<<20
		})
		if err := gone.conn.(*net.TCPConn).SetLinger(0); err != nil {
			t.Fatal(err)
		}
		gone.conn.Close()
		waitFor(t, "the reset session to end", func() bool { return metrics(t, p)[metricConns] == 1 })
	})
	expectRunning(t, p)
}

// TestUpstreamConnectionCut cuts the TCP connections of one upstream: its
// sessions are told, the sessions of another upstream do not notice.
func TestUpstreamConnectionCut(t *testing.T) {
	tn := newTenants(t, "a", "b")
	relay := startForwarder(t, cluster.Addr())
	p := startProxy(t, fmt.Sprintf(`upstreams:
  - name: main
    dsn: %s
  - name: relayed
    dsn: %s
tenants:
  - org: a
    upstream: relayed
  - org: b
`, cluster.DSN("postgres", tn.db), relay.dsn("postgres", tn.db)))
	busy := p.connect(t, "postgres", "", "a")
	idle := p.connect(t, "postgres", "", "a")
	other := p.connect(t, "postgres", "", "b")
	mustWork(t, idle)

	healthyDuring(t, other, func() {
		sleeping := sleepInBackground(busy)
		waitRunning(t, tn.db, sleep60)
		relay.cut()
		wantPgError(t, <-sleeping, "08006")
		_, err := queryInt(t.Context(), idle, "SELECT 1")
		expectUpstreamLost(t, "idle session", err)
	})
	expectRunning(t, p)
	mustWork(t, p.connect(t, "postgres", "", "a"))
}

// sleepInBackground runs sleep60 on conn and delivers its error. The query
// gets timeout: the error must come from the connection before that.
func sleepInBackground(conn *pgx.Conn) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_, err := conn.Exec(ctx, sleep60)
		done <- err
	}()
	return done
}

// expectUpstreamLost checks the error a session got when its upstream went
// away: PostgreSQL's own shutdown error, the proxy's 08006 or a closed
// connection, but not a timeout.
func expectUpstreamLost(t testing.TB, who string, err error) {
	t.Helper()
	t.Logf("%s got: %v", who, err)
	switch {
	case err == nil:
		t.Fatalf("%s: no error", who)
	case errors.Is(err, context.DeadlineExceeded):
		t.Fatalf("%s: not told the upstream is gone: %v", who, err)
	}
	if code := sqlState(err); code != "" && !slices.Contains([]string{"08006", "57P01", "57P02"}, code) {
		t.Fatalf("%s: got %v, want FATAL 08006 or 57P01", who, err)
	}
}

// expectRunning fails t if the proxy has exited.
func expectRunning(t testing.TB, p *proxyProc) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("proxy exited: %v", p.err)
	default:
	}
}
