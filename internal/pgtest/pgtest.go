package pgtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Superuser is the role that owns the cluster.
const Superuser = "postgres"

const host = "127.0.0.1"

// Options customise a cluster.
type Options struct {
	// HBA holds extra pg_hba.conf lines, placed before the defaults (trust
	// for local connections and for the superuser over TCP, password
	// authentication for everyone else).
	HBA []string
	// Settings holds extra postgresql.conf settings. They override the
	// defaults, except port, which Start chooses.
	Settings map[string]string
}

// Cluster is a running (or stopped) throwaway PostgreSQL server.
type Cluster struct {
	bin     string // directory of initdb and postgres
	dir     string // temporary directory holding everything below
	data    string
	sockets string
	logPath string
	port    int
	attr    *syscall.SysProcAttr
	seq     atomic.Int64

	mu   sync.Mutex
	proc *process // nil while stopped
}

// process is one run of the postmaster.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the postmaster has exited
	err  error         // exit error, set before done is closed
}

// Start creates a cluster in a fresh temporary directory, starts it on a free
// port of 127.0.0.1 and waits until it accepts connections.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c := &Cluster{
		bin:     bin,
		dir:     dir,
		data:    filepath.Join(dir, "data"),
		sockets: filepath.Join(dir, "run"),
		logPath: filepath.Join(dir, "postgres.log"),
		port:    port,
		attr:    sysProcAttr(cred),
	}
	if err := c.init(ctx, opts, cred); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.start(ctx); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	return c, nil
}

// Host returns the address the server listens on.
func (c *Cluster) Host() string { return host }

// Port returns the TCP port the server listens on.
func (c *Cluster) Port() int { return c.port }

// Addr returns host:port of the server.
func (c *Cluster) Addr() string { return net.JoinHostPort(host, strconv.Itoa(c.port)) }

// DSN returns a URL connecting as user to database, without TLS.
func (c *Cluster) DSN(user, database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(user),
		Host:     c.Addr(),
		Path:     "/" + database,
		RawPath:  "/" + url.PathEscape(database),
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Stop shuts the server down (fast shutdown: sessions are terminated) and
// keeps its data. Stopping a stopped cluster does nothing.
func (c *Cluster) Stop(ctx context.Context) error {
	return c.shutdown(ctx, syscall.SIGINT)
}

// Kill shuts the server down like a crash (immediate shutdown): the next
// start runs crash recovery. Killing a stopped cluster does nothing.
func (c *Cluster) Kill(ctx context.Context) error {
	return c.shutdown(ctx, syscall.SIGQUIT)
}

// Restart starts the server again on the same port, stopping it first if it
// is running, and waits until it accepts connections.
func (c *Cluster) Restart(ctx context.Context) error {
	if err := c.Stop(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.start(ctx)
}

// Close stops the server and removes its directory.
func (c *Cluster) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stopCtx, stopCancel := context.WithTimeout(ctx, 30*time.Second)
	defer stopCancel()
	err := c.Stop(stopCtx)
	if err != nil {
		err = errors.Join(err, c.Kill(ctx))
	}
	return errors.Join(err, os.RemoveAll(c.dir))
}

// Exec runs sql in database as the superuser with the simple query protocol,
// so sql may hold several statements.
func (c *Cluster) Exec(ctx context.Context, database, sql string) error {
	conn, err := pgconn.Connect(ctx, c.DSN(Superuser, database))
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("pgtest: exec in database %q: %w", database, err)
	}
	return nil
}

// CreateDatabase creates a database named after the test and drops it, with
// any sessions still connected, when the test ends.
func (c *Cluster) CreateDatabase(t testing.TB) string {
	t.Helper()
	name := c.uniqueName(t)
	if err := c.Exec(t.Context(), "postgres", "CREATE DATABASE "+quote(name)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+quote(name)+" WITH (FORCE)"); err != nil {
			t.Error(err)
		}
	})
	return name
}

// CreateSchema creates a schema named after the test in database and drops
// it, with everything in it, when the test ends.
func (c *Cluster) CreateSchema(t testing.TB, database string) string {
	t.Helper()
	name := c.uniqueName(t)
	if err := c.Exec(t.Context(), database, "CREATE SCHEMA "+quote(name)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Exec(ctx, database, "DROP SCHEMA IF EXISTS "+quote(name)+" CASCADE"); err != nil {
			t.Error(err)
		}
	})
	return name
}

// Run is for TestMain: it starts a cluster, stores it in *c, runs the tests
// and closes the cluster. If the cluster does not start it prints the reason
// and fails; it never skips. It returns the exit code for os.Exit.
func Run(m *testing.M, opts Options, c **Cluster) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cluster, err := Start(ctx, opts)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*c = cluster
	code := m.Run()
	if err := cluster.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// init runs initdb and writes the configuration.
func (c *Cluster) init(ctx context.Context, opts Options, cred *syscall.Credential) error {
	if err := os.Mkdir(c.sockets, 0o700); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if err := os.WriteFile(c.logPath, nil, 0o600); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if cred != nil {
		for _, p := range []string{c.dir, c.sockets, c.logPath} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return fmt.Errorf("pgtest: %w", err)
			}
		}
	}

	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, "initdb"),
		"-D", c.data, "-U", Superuser, "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync")
	cmd.Dir = c.dir
	cmd.SysProcAttr = c.attr
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}

	hba := slices.Clone(opts.HBA)
	hba = append(hba,
		"local all all trust",
		"host all "+Superuser+" 127.0.0.1/32 trust",
		"host all "+Superuser+" ::1/128 trust",
		"host all all 127.0.0.1/32 md5",
		"host all all ::1/128 md5",
	)
	if err := os.WriteFile(filepath.Join(c.data, "pg_hba.conf"), []byte(strings.Join(hba, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}

	settings := map[string]string{
		"listen_addresses":        host,
		"unix_socket_directories": c.sockets,
		"max_connections":         "200",
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "off",
		"logging_collector":       "off",
		"log_destination":         "stderr",
	}
	maps.Copy(settings, opts.Settings)
	settings["port"] = strconv.Itoa(c.port)
	var conf strings.Builder
	conf.WriteString("\n# pgtest\n")
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		fmt.Fprintf(&conf, "%s = '%s'\n", k, strings.ReplaceAll(settings[k], "'", "''"))
	}
	f, err := os.OpenFile(filepath.Join(c.data, "postgresql.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	_, err = f.WriteString(conf.String())
	return errors.Join(err, f.Close())
}

// start runs the postmaster, its output appended to the log file, and waits
// until it accepts connections. c.mu must be held.
func (c *Cluster) start(ctx context.Context) error {
	logFile, err := os.OpenFile(c.logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer logFile.Close() // the postmaster has its own copy
	cmd := exec.Command(filepath.Join(c.bin, "postgres"), "-D", c.data)
	cmd.Dir = c.dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = c.attr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := c.waitReady(ctx, p); err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		return c.withLog(err)
	}
	c.proc = p
	return nil
}

// waitReady polls until a connection succeeds, the postmaster exits or ctx
// ends.
func (c *Cluster) waitReady(ctx context.Context, p *process) error {
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgconn.Connect(attemptCtx, c.DSN(Superuser, "postgres"))
		cancel()
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-p.done:
			return fmt.Errorf("pgtest: postgres exited during startup: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("pgtest: waiting for postgres: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// shutdown sends sig to the postmaster and waits for it to exit.
func (c *Cluster) shutdown(ctx context.Context, sig os.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.proc
	if p == nil {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("pgtest: signal postgres: %w", err)
	}
	select {
	case <-p.done:
		c.proc = nil
		return nil
	case <-ctx.Done():
		return c.withLog(fmt.Errorf("pgtest: waiting for postgres to stop: %w", ctx.Err()))
	}
}

// withLog appends the tail of the server log to err.
func (c *Cluster) withLog(err error) error {
	const tailSize = 4 << 10
	f, openErr := os.Open(c.logPath)
	if openErr != nil {
		return err
	}
	defer f.Close()
	if fi, statErr := f.Stat(); statErr == nil && fi.Size() > tailSize {
		_, _ = f.Seek(-tailSize, io.SeekEnd)
	}
	tail, _ := io.ReadAll(f)
	return fmt.Errorf("%w\npostgres log (tail):\n%s", err, tail)
}

// uniqueName returns a fresh identifier made of the test name and a sequence
// number.
func (c *Cluster) uniqueName(t testing.TB) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		default:
			return '_'
		}
	}, t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	return fmt.Sprintf("%s_%d", name, c.seq.Add(1))
}

func quote(name string) string { return pgx.Identifier{name}.Sanitize() }

// binDir finds the directory holding initdb and postgres.
func binDir() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); hasServer(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return cmp.Compare(version(b), version(a)) })
	for _, dir := range dirs {
		if hasServer(dir) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil && hasServer(filepath.Dir(p)) {
		return filepath.Dir(p), nil
	}
	return "", errors.New("pgtest: PostgreSQL server binaries (initdb, postgres) not found; scripts/test installs them")
}

func hasServer(dir string) bool {
	for _, name := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return false
		}
	}
	return true
}

// serverCredential returns the postgres OS user when running as root (initdb
// and postgres refuse to run as root), else nil: the current user.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root needs the postgres OS user: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: uid of postgres: %w", err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: gid of postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
