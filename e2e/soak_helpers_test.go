package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// soakDefaultTrials is the number of trials PGMIGRATE_SOAK=1 (or any value
// that is not a number) asks for: with every fifth trial a
// pg_terminate_backend one, 52 of them kill the proxy with SIGKILL.
const soakDefaultTrials = 64

// soakTrials reads PGMIGRATE_SOAK: unset, empty or "0" is no soak (ok
// false); a number N of 2 or more is N trials; "1" or any other value
// (true, yes) is soakDefaultTrials.
func soakTrials() (trials int, ok bool) {
	v := strings.TrimSpace(os.Getenv("PGMIGRATE_SOAK"))
	if v == "" || v == "0" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 2 {
		return n, true
	}
	return soakDefaultTrials, true
}

// soakSeed is PGMIGRATE_SOAK_SEED if set (to replay a run), else a fresh
// seed; the test logs it.
func soakSeed(t testing.TB) uint64 {
	t.Helper()
	v := os.Getenv("PGMIGRATE_SOAK_SEED")
	if v == "" {
		return uint64(time.Now().UnixNano())
	}
	seed, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("PGMIGRATE_SOAK_SEED=%q: %v", v, err)
	}
	return seed
}

// soakProxy is a proxy that the soak kills and starts again, each time as
// a new process with the same config file and the same addresses.
type soakProxy struct {
	t        testing.TB
	config   string // the config file, listen addresses included
	addr     string
	proc     *proxyProc // the running process, or the last one
	previous *proxyProc // the one restart killed
}

// newSoakProxy writes config (YAML without listen addresses) with two free
// addresses and starts the proxy; it is stopped when t ends.
func newSoakProxy(t testing.TB, config string) *soakProxy {
	t.Helper()
	s := &soakProxy{t: t, addr: freeAddr(t), config: filepath.Join(t.TempDir(), "pgmigrate.yaml")}
	writeFile(t, s.config, fmt.Sprintf("listen: %s\nadmin_listen: %s\n%s", s.addr, freeAddr(t), config))
	t.Cleanup(func() {
		if s.proc != nil {
			s.proc.stop()
		}
	})
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	return s
}

// start runs a new proxy process and waits until it listens.
func (s *soakProxy) start() error {
	p := &proxyProc{t: s.t, addr: s.addr, config: s.config, logs: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(proxyBin, "--config", s.config)
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		return err
	}
	s.proc = p
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.logs.String(), `"message":"listening"`) {
		select {
		case <-p.done:
			return fmt.Errorf("proxy exited at start: %v\n%s", p.err, p.logs)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("proxy did not listen on %s\n%s", s.addr, p.logs)
		}
	}
	return nil
}

// kill ends the proxy with SIGKILL and waits for it to be gone.
func (s *soakProxy) kill() {
	s.proc.cmd.Process.Signal(syscall.SIGKILL)
	<-s.proc.done
}

// restart kills the proxy and starts it again; the soak cannot go on
// without it.
func (s *soakProxy) restart() {
	s.kill()
	s.previous = s.proc
	if err := s.start(); err != nil {
		s.t.Fatalf("restarting the proxy: %v", err)
	}
}

// url is a connection URL to the org's database as postgres, sending
// queries with the simple protocol (the one migrate commands answer in).
func (s *soakProxy) url(org string) string {
	return s.proc.url("postgres", "", org, "default_query_exec_mode", "simple_protocol")
}

// soakConnect opens a connection to url that the caller closes.
func soakConnect(ctx context.Context, url string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return pgx.Connect(ctx, url)
}

// soakRows runs sql on conn and returns its rows as text (NULL as "").
func soakRows(ctx context.Context, conn *pgx.Conn, sql string, args ...any) ([][]string, error) {
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		values, err := rows.Values()
		if err != nil {
			return nil, err
		}
		row := make([]string, len(values))
		for i, v := range values {
			if v != nil {
				row[i] = fmt.Sprint(v)
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// soakQuery opens a connection to url, runs sql and closes it.
func soakQuery(ctx context.Context, url, sql string) ([][]string, error) {
	conn, err := soakConnect(ctx, url)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	return soakRows(ctx, conn, sql)
}

// soakStatus is the status of a mutating command's result row (applied,
// unchanged), or an error if it failed or answered something else.
func soakStatus(rows [][]string, err error) (string, error) {
	if err != nil {
		return "", err
	}
	if len(rows) != 1 || len(rows[0]) == 0 {
		return "", fmt.Errorf("answered %d rows: %q", len(rows), rows)
	}
	switch status := rows[0][0]; status {
	case "applied", "unchanged":
		return status, nil
	default:
		return "", fmt.Errorf("status %q: %q", status, rows[0])
	}
}

// soakEngineApp is the application_name of the engine's connections, set
// in the upstream DSN, which only the engine's pool uses: clients'
// sessions carry their own.
const soakEngineApp = "pgmigrate-soak-engine"

// terminateEngine ends every backend of the engine's connections to the
// database of direct (pg_terminate_backend) and says how many it ended.
func terminateEngine(ctx context.Context, direct *pgx.Conn) (int, error) {
	rows, err := soakRows(ctx, direct, `
SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity
WHERE datname = current_database() AND application_name = $1`, soakEngineApp)
	return len(rows), err
}

// busyEngineBackends lists the engine's backends of the database of
// direct that are not idle: "pid state: query".
func busyEngineBackends(ctx context.Context, direct *pgx.Conn) ([]string, error) {
	rows, err := soakRows(ctx, direct, `
SELECT format('%s %s: %s', pid, state, left(query, 120)) FROM pg_catalog.pg_stat_activity
WHERE datname = current_database() AND application_name = $1 AND state <> 'idle'
ORDER BY pid`, soakEngineApp)
	return firstColumn(rows), err
}

// waitEngineIdle waits, up to limit, until the engine's backends are all
// idle: those a killed proxy left running (a CREATE INDEX CONCURRENTLY
// goes on until it tries to answer) have finished. It returns the busy
// ones it saw first, and those still busy at the limit.
func waitEngineIdle(ctx context.Context, direct *pgx.Conn, limit time.Duration) (seen, left []string, err error) {
	deadline := time.Now().Add(limit)
	for {
		busy, err := busyEngineBackends(ctx, direct)
		if err != nil || len(busy) == 0 {
			return seen, nil, err
		}
		if seen == nil {
			seen = busy
		}
		if time.Now().After(deadline) {
			return seen, busy, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// catalogProblems lists what the live catalog holds in schema that only
// an interrupted change leaves: invalid indexes and NOT VALID constraints.
func catalogProblems(ctx context.Context, direct *pgx.Conn, schema string) ([]string, error) {
	rows, err := soakRows(ctx, direct, `
SELECT format('invalid index %s on %s', i.indexrelid::regclass, i.indrelid::regclass)
FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
WHERE c.relnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1) AND NOT i.indisvalid
UNION ALL
SELECT format('NOT VALID constraint %s on %s', conname, conrelid::regclass)
FROM pg_catalog.pg_constraint
WHERE connamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1) AND NOT convalidated`, schema)
	return firstColumn(rows), err
}

// verifyProblems runs CALL migrate.verify() in a session of the org (so
// for that org only) and lists its rows: "model.field: kind (detail)".
func verifyProblems(ctx context.Context, url string) ([]string, error) {
	rows, err := soakQuery(ctx, url, "CALL migrate.verify()")
	var out []string
	for _, r := range rows {
		if len(r) < 4 {
			out = append(out, strings.Join(r, "|"))
			continue
		}
		out = append(out, fmt.Sprintf("%s.%s: %s (%s)", r[0], r[1], r[2], r[3]))
	}
	return out, err
}

// firstColumn is the first value of each row.
func firstColumn(rows [][]string) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r[0])
	}
	return out
}

// logTail is the last n lines of p's log, leaving out those of client
// connections opening and closing.
func logTail(p *proxyProc, n int) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(p.logs.String(), "\n"), "\n") {
		if !strings.Contains(l, `"message":"connection opened"`) && !strings.Contains(l, `"message":"connection closed"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
