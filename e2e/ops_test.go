package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// exitTimeout bounds how long a test waits for the proxy to exit; tests
// that must not wait for drain_timeout set it far above this.
const exitTimeout = 20 * time.Second

// signalProxy sends sig to the proxy.
func signalProxy(t testing.TB, p *proxyProc, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// waitExit waits for the proxy to exit and returns its exit error.
func waitExit(t testing.TB, p *proxyProc) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(exitTimeout):
		t.Fatalf("proxy still running %v later", exitTimeout)
		return nil
	}
}

func TestShutdownTerminatesSessionsAfterDrainTimeout(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config("drain_timeout: 1s\n"))
	c := dialRaw(t, p.addr)
	c.login("postgres", "acme")
	c.query("SELECT 1")

	signalProxy(t, p, syscall.SIGTERM)
	c.expectFatal("57P01")
	if err := waitExit(t, p); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

func TestShutdownWithoutSessionsExitsAtOnce(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config("drain_timeout: 10m\n"))
	conn := p.connect(t, "postgres", "", "acme")
	mustWork(t, conn)
	if err := conn.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	signalProxy(t, p, syscall.SIGTERM)
	if err := waitExit(t, p); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

func TestShutdownRefusesNewClientsAndLetsSessionsFinish(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config("drain_timeout: 10m\n"))
	conn := p.connect(t, "postgres", "", "acme")

	signalProxy(t, p, syscall.SIGTERM)
	waitFor(t, "the listener to close", func() bool {
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	mustWork(t, conn)
	expectRunning(t, p)

	if err := conn.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(t, p); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

func TestReloadOnSIGHUP(t *testing.T) {
	both := newTenants(t, "a", "b")
	onlyA := tenants{db: both.db, orgs: []string{"a"}}
	p := startProxy(t, onlyA.config(""))
	// The proxy handles SIGHUP once it is up; before that the signal would
	// end it.
	waitForLog(t, p, "listening", nil)
	sessionA := p.connect(t, "postgres", "", "a")
	mustWork(t, sessionA)
	_, err := tryConnect(t, p, "postgres", "", "b")
	wantPgError(t, err, "3D000")

	p.writeConfig(both.config(""))
	signalProxy(t, p, syscall.SIGHUP)
	waitFor(t, "tenant b to be served", func() bool {
		conn, err := tryConnect(t, p, "postgres", "", "b")
		if err != nil && sqlState(err) != "3D000" {
			t.Fatalf("connect to b: %v", err)
		}
		return conn != nil
	})
	mustWork(t, sessionA)

	// Configs that fail validation (and would drop b) are not applied.
	broken := []struct{ config, key string }{
		{onlyA.config("limits:\n  max_client_conns: 0\n"), "limits.max_client_conns"},
		{strings.Replace(onlyA.config(""), cluster.Addr(), "127.0.0.1:99999", 1), "upstreams[0].dsn"},
	}
	for _, b := range broken {
		p.writeConfig(b.config)
		signalProxy(t, p, syscall.SIGHUP)
		waitForLog(t, p, "reload failed", map[string]string{"error": b.key})
		mustWork(t, sessionA)
		mustWork(t, p.connect(t, "postgres", "", "b"))
		mustWork(t, p.connect(t, "postgres", "", "a"))
	}
}

// httpGet fetches path from the proxy's admin listener.
func httpGet(t testing.TB, p *proxyProc, path string) (int, string) {
	t.Helper()
	client := &http.Client{Timeout: timeout}
	resp, err := client.Get("http://" + p.admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// expectStatus fails t unless GET path answers code.
func expectStatus(t testing.TB, p *proxyProc, path string, code int) {
	t.Helper()
	if got, body := httpGet(t, p, path); got != code {
		t.Fatalf("GET %s = %d %q, want %d", path, got, body, code)
	}
}

// Series of /metrics.
const (
	metricConns        = "pgmigrate_client_connections"
	metricConnsTotal   = "pgmigrate_client_connections_total"
	metricBytesUp      = `pgmigrate_relayed_bytes_total{direction="client_to_upstream"}`
	metricBytesDown    = `pgmigrate_relayed_bytes_total{direction="upstream_to_client"}`
	metricConnectError = "pgmigrate_upstream_connect_errors_total"
)

// metrics fetches /metrics and returns each series (name and labels) with
// its value.
func metrics(t testing.TB, p *proxyProc) map[string]float64 {
	t.Helper()
	code, body := httpGet(t, p, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d %q", code, body)
	}
	series := map[string]float64{}
	for line := range strings.Lines(body) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("malformed metrics line %q", line)
		}
		series[line[:i]] = v
	}
	for _, name := range []string{metricConns, metricConnsTotal, metricBytesUp, metricBytesDown, metricConnectError} {
		if _, ok := series[name]; !ok {
			t.Fatalf("/metrics lacks %s:\n%s", name, body)
		}
	}
	return series
}

func TestAdminEndpoints(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	expectStatus(t, p, "/healthz", http.StatusOK)
	expectStatus(t, p, "/readyz", http.StatusOK)

	before := metrics(t, p)
	conn := p.connect(t, "postgres", "", "acme")
	mustWork(t, conn)
	during := metrics(t, p)
	if during[metricConns] < 1 {
		t.Errorf("%s = %v with a session open", metricConns, during[metricConns])
	}
	for _, name := range []string{metricConnsTotal, metricBytesUp, metricBytesDown} {
		if during[name] <= before[name] {
			t.Errorf("%s did not grow with a query: %v then %v", name, before[name], during[name])
		}
	}

	if err := conn.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, metricConns+" to return to 0", func() bool { return metrics(t, p)[metricConns] == 0 })
}

func TestAdminReadyzFollowsUpstream(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	expectStatus(t, p, "/readyz", http.StatusOK)
	before := metrics(t, p)[metricConnectError]

	restart := takeClusterDown(t, cluster.Stop)
	expectStatus(t, p, "/readyz", http.StatusServiceUnavailable)
	expectStatus(t, p, "/healthz", http.StatusOK)
	_, err := tryConnect(t, p, "postgres", "", "acme")
	wantPgError(t, err, "08006")
	if after := metrics(t, p)[metricConnectError]; after <= before {
		t.Errorf("%s did not grow with a failed upstream connection: %v then %v", metricConnectError, before, after)
	}

	restart()
	expectStatus(t, p, "/readyz", http.StatusOK)
	mustWork(t, p.connect(t, "postgres", "", "acme"))
}

// logRecords parses the proxy's stderr, which must be JSON lines that each
// carry a message.
func logRecords(t testing.TB, p *proxyProc) []map[string]any {
	t.Helper()
	var recs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.logs.String()))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		if _, ok := rec["message"].(string); !ok {
			t.Fatalf("log line has no message: %q", sc.Text())
		}
		recs = append(recs, rec)
	}
	return recs
}

// waitForLog waits for a log record whose message contains message and
// whose attributes contain the given texts; it returns the record.
func waitForLog(t testing.TB, p *proxyProc, message string, attrs map[string]string) map[string]any {
	t.Helper()
	matches := func(rec map[string]any) bool {
		if !strings.Contains(rec["message"].(string), message) {
			return false
		}
		for k, v := range attrs {
			if s, ok := rec[k].(string); !ok || !strings.Contains(s, v) {
				return false
			}
		}
		return true
	}
	var found map[string]any
	waitFor(t, fmt.Sprintf("a log record %q with %v", message, attrs), func() bool {
		expectRunning(t, p)
		for _, rec := range logRecords(t, p) {
			if matches(rec) {
				found = rec
				return true
			}
		}
		return false
	})
	return found
}

func TestConnectionLogs(t *testing.T) {
	const (
		upstreamSecret = "upstream-secret-4711"
		wrongPassword  = "not-the-password-0815"
	)
	tn := newTenants(t, "acme")
	// The superuser is trusted, so this password is never checked; it must
	// not be logged either.
	config := strings.Replace(tn.config(""), "postgres://postgres@", "postgres://postgres:"+upstreamSecret+"@", 1)
	p := startProxy(t, config)

	for _, user := range []string{scramUser, cleartextUser} {
		conn := p.connect(t, user, userPassword, "acme")
		mustWork(t, conn)
		if err := conn.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		opened := waitForLog(t, p, "connection opened", map[string]string{"user": user})
		closed := waitForLog(t, p, "connection closed", map[string]string{"user": user})
		for _, rec := range []map[string]any{opened, closed} {
			if rec["org"] != "acme" {
				t.Errorf("org = %v, want acme: %v", rec["org"], rec)
			}
		}
		if d, ok := closed["duration_ms"].(float64); !ok || d < 0 {
			t.Errorf("duration_ms = %v: %v", closed["duration_ms"], closed)
		}
	}
	_, err := tryConnect(t, p, cleartextUser, wrongPassword, "acme")
	wantPgError(t, err, "28P01")
	waitForLog(t, p, "connection refused", nil)

	logs := p.logs.String()
	for _, secret := range []string{userPassword, wrongPassword, upstreamSecret} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs contain the password %q:\n%s", secret, logs)
		}
	}
}

// runProxy runs the proxy binary with args and an environment free of
// PGMIGRATE_* settings, and returns its exit code and output. A proxy that
// starts serving is stopped after a while and fails t.
func runProxy(t testing.TB, args ...string) (int, string) {
	t.Helper()
	ctx := testContext(t)
	cmd := exec.CommandContext(ctx, proxyBin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PGMIGRATE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("proxy %q kept running:\n%s", args, out)
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

func TestBadConfigExits(t *testing.T) {
	upstreams := "upstreams:\n  - name: main\n    dsn: " + cluster.DSN("postgres", "postgres") + "\n"
	cases := []struct {
		name, config, want string
	}{
		{"invalid org", upstreams + "tenants:\n  - org: Bad Org\n", `tenants[0].org: "Bad Org" is not a valid org name`},
		{"duplicate org", upstreams + "tenants:\n  - org: acme\n  - org: acme\n", "tenants[1].org"},
		{"tenant of an unknown upstream", upstreams + "tenants:\n  - org: acme\n    upstream: elsewhere\n", "tenants[0].upstream"},
		{"unknown key", upstreams + "listen_adress: 127.0.0.1:1\n", "listen_adress"},
		{"unknown nested key", upstreams + "limits:\n  max_conns: 3\n", "max_conns"},
		{"bad duration", upstreams + "drain_timeout: soon\n", "drain_timeout"},
		{"duration without unit", upstreams + "limits:\n  startup_timeout: 5\n", "startup_timeout"},
		{"negative duration", upstreams + "drain_timeout: -1s\n", "drain_timeout"},
		{"message size too small", upstreams + "limits:\n  max_message_size: 10\n", "limits.max_message_size"},
		{"bad raw_ddl", upstreams + "policy:\n  raw_ddl: sometimes\n", "policy.raw_ddl"},
		{"bad log_level", upstreams + "log_level: loud\n", "log_level"},
		{"missing upstreams", "tenants:\n  - org: acme\n", "upstreams"},
		{"unparsable dsn", "upstreams:\n  - name: main\n    dsn: '::::'\n", "upstreams[0].dsn"},
		{"dsn with a bad port", "upstreams:\n  - name: main\n    dsn: postgres://pgmigrate@127.0.0.1:99999/crm\n", "upstreams[0].dsn"},
		{"dsn with a bad port and a tenant", "upstreams:\n  - name: main\n    dsn: postgres://pgmigrate@127.0.0.1:99999/crm\ntenants:\n  - org: acme\n", "upstreams[0].dsn"},
		{"dsn without database", "upstreams:\n  - name: main\n    dsn: postgres://pgmigrate@127.0.0.1:5432\n", "upstreams[0].dsn"},
		{"unset environment variable", "upstreams:\n  - name: main\n    dsn: ${PGMIGRATE_TEST_UNSET_DSN}\n", "PGMIGRATE_TEST_UNSET_DSN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pgmigrate.yaml")
			writeFile(t, path, tc.config)
			code, out := runProxy(t, "--config", path, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
			if code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("output does not name %s:\n%s", tc.want, out)
			}
		})
	}
}

func TestHelpListsEveryOption(t *testing.T) {
	code, out := runProxy(t, "--help")
	if code != 0 {
		t.Fatalf("--help exit code %d:\n%s", code, out)
	}
	// Every flag line names its environment variable.
	flagLine := regexp.MustCompile(`(?m)^\s+-(\S+)`)
	envName := regexp.MustCompile(`\benv (PGMIGRATE_[A-Z_]+)`)
	flags := flagLine.FindAllStringSubmatch(out, -1)
	envs := envName.FindAllStringSubmatch(out, -1)
	if len(flags) != len(envs) {
		t.Errorf("%d flags but %d environment variables:\n%s", len(flags), len(envs), out)
	}
	for _, want := range []string{
		"-config", "PGMIGRATE_CONFIG",
		"-listen", "PGMIGRATE_LISTEN",
		"-admin-listen", "PGMIGRATE_ADMIN_LISTEN",
		"-upstream", "PGMIGRATE_UPSTREAM",
		"-log-level", "PGMIGRATE_LOG_LEVEL",
		"drain_timeout", "limits.startup_timeout", "limits.max_message_size", "limits.max_client_conns",
		"upstreams[].dsn", "tenants[].org", "policy.raw_ddl", "SIGTERM", "SIGHUP",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--help does not mention %s", want)
		}
	}
}
