package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgmigrate/pgmigrate-proxy/internal/pgtest"
)

var (
	cluster  *pgtest.Cluster
	proxyBin string
)

// Roles created once for the whole run, each authenticated its own way.
const (
	scramUser     = "scram_user"
	md5User       = "md5_user"
	cleartextUser = "cleartext_user"
	userPassword  = "s3cret pass'word"
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pgmigrate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// PGMIGRATE_E2E_PROXY_BIN runs the tests (benchmarks, above all)
	// against another build, such as one of an earlier commit.
	proxyBin = os.Getenv("PGMIGRATE_E2E_PROXY_BIN")
	if proxyBin == "" {
		proxyBin = filepath.Join(dir, "pgmigrate-proxy")
		build := exec.Command("go", "build", "-o", proxyBin, "../cmd/pgmigrate-proxy")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building the proxy: %v\n%s", err, out)
			return 1
		}
	}
	opts := pgtest.Options{HBA: []string{"host all " + cleartextUser + " 127.0.0.1/32 password"}}
	return pgtest.Run(m, opts, &cluster)
}

// createRoles makes the password-authenticated roles once per run.
var createRoles = sync.OnceValue(func() error {
	lit := "'" + strings.ReplaceAll(userPassword, "'", "''") + "'"
	return cluster.Exec(context.Background(), "postgres", fmt.Sprintf(`
SET password_encryption = 'scram-sha-256';
CREATE ROLE %[1]s LOGIN PASSWORD %[4]s;
CREATE ROLE %[3]s LOGIN PASSWORD %[4]s;
SET password_encryption = 'md5';
CREATE ROLE %[2]s LOGIN PASSWORD %[4]s;
`, scramUser, md5User, cleartextUser, lit))
})

// tenants is a fresh database with one schema per org.
type tenants struct {
	db   string
	orgs []string
}

// newTenants creates a database holding a schema for each org, usable by
// every role, dropped when t ends, and each org's tenant role (kept for the
// run), of which the password-authenticated roles are members.
func newTenants(t testing.TB, orgs ...string) tenants {
	t.Helper()
	if err := createRoles(); err != nil {
		t.Fatal(err)
	}
	db := cluster.CreateDatabase(t)
	var sql strings.Builder
	for _, org := range orgs {
		// Org names need no escaping in a literal.
		id := pgx.Identifier{org}.Sanitize()
		fmt.Fprintf(&sql, "CREATE SCHEMA %[1]s; GRANT ALL ON SCHEMA %[1]s TO PUBLIC;"+
			"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%[2]s') THEN CREATE ROLE %[1]s NOLOGIN; END IF; END$$;"+
			"GRANT %[1]s TO %[3]s, %[4]s, %[5]s;", id, org, scramUser, md5User, cleartextUser)
	}
	if err := cluster.Exec(context.Background(), db, sql.String()); err != nil {
		t.Fatal(err)
	}
	return tenants{db: db, orgs: orgs}
}

// config returns proxy config YAML (without listen addresses) serving the
// tenants, followed by extra.
func (tn tenants) config(extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "upstreams:\n  - name: main\n    dsn: %s\ntenants:\n", cluster.DSN("postgres", tn.db))
	for _, org := range tn.orgs {
		fmt.Fprintf(&b, "  - org: %s\n", org)
	}
	b.WriteString("policy:\n  admins: [postgres]\n")
	b.WriteString(extra)
	return b.String()
}

// proxyProc is a running pgmigrate-proxy.
type proxyProc struct {
	t      testing.TB
	cmd    *exec.Cmd
	addr   string
	admin  string
	config string
	logs   *lockedBuffer
	done   chan struct{}
	err    error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startProxy runs the proxy with config (YAML without listen and
// admin_listen, which it picks) and stops it with SIGTERM when t ends.
func startProxy(t testing.TB, config string, args ...string) *proxyProc {
	t.Helper()
	return startProxyEnv(t, config, nil, args...)
}

// startProxyEnv is startProxy with extra environment variables (NAME=value).
func startProxyEnv(t testing.TB, config string, env []string, args ...string) *proxyProc {
	t.Helper()
	p := &proxyProc{t: t, addr: freeAddr(t), admin: freeAddr(t), logs: &lockedBuffer{}, done: make(chan struct{})}
	p.config = filepath.Join(t.TempDir(), "pgmigrate.yaml")
	p.writeConfig(config)
	p.cmd = exec.Command(proxyBin, append([]string{"--config", p.config}, args...)...)
	p.cmd.Stderr = p.logs
	p.cmd.Env = append(os.Environ(), env...)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("proxy log:\n%s", p.logs)
		}
	})
	// The proxy binds its addresses, provisions its tenants, then serves
	// and says so.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if strings.Contains(p.logs.String(), `"message":"listening"`) {
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("proxy exited: %v\n%s", p.err, p.logs)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy did not listen on %s\n%s", p.addr, p.logs)
		}
	}
}

// writeConfig replaces the proxy's config file (read again on SIGHUP).
func (p *proxyProc) writeConfig(config string) {
	full := fmt.Sprintf("listen: %s\nadmin_listen: %s\n%s", p.addr, p.admin, config)
	if err := os.WriteFile(p.config, []byte(full), 0o600); err != nil {
		p.t.Fatal(err)
	}
}

// stop sends SIGTERM and waits for the exit, returning its error.
func (p *proxyProc) stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

// url is a connection URL to the proxy.
func (p *proxyProc) url(user, password, database string, params ...string) string {
	u := url.URL{Scheme: "postgres", Host: p.addr, Path: "/" + database, RawPath: "/" + url.PathEscape(database)}
	if password != "" {
		u.User = url.UserPassword(user, password)
	} else {
		u.User = url.User(user)
	}
	q := url.Values{"sslmode": {"disable"}}
	for i := 0; i+1 < len(params); i += 2 {
		q.Set(params[i], params[i+1])
	}
	// libpq and pgx do not read '+' as a space in connection URLs.
	u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	return u.String()
}

// connect opens a pgx connection through the proxy, closed when t ends.
func (p *proxyProc) connect(t testing.TB, user, password, database string, params ...string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.url(user, password, database, params...))
	if err != nil {
		t.Fatalf("connect through proxy: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
