package e2e

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The soak's tenant and its data: item holds soakItems rows, each with a
// unique code and a cat that references one of category's ten rows.
const (
	soakOrg      = "soak"
	soakItems    = 100_000
	soakCategory = `CALL migrate.create_model('category', '[{"name":"id","type":"Int"},{"name":"label","type":"String"}]')`
	soakItem     = `CALL migrate.create_model('item', '[{"name":"id","type":"Int"},{"name":"name","type":"String"},{"name":"code","type":"Int"},{"name":"cat","type":"Int"}]')`
)

// soakBound is how long a command (the interrupted one, its re-run) and the
// engine's orphaned backends may take before the trial counts as stuck.
const soakBound = 90 * time.Second

// The faults a trial injects mid-command.
const (
	faultKill      = "kill -9"              // SIGKILL the proxy, then start it again
	faultTerminate = "pg_terminate_backend" // end the engine's backends; the proxy lives
)

// soakKind is one multi-phase command the soak interrupts.
type soakKind struct {
	name string
	// reset, if set, runs before the command: the alter_field kinds change
	// the same column each trial, and reset takes the change off again.
	reset string
	// call is the command of trial n; the add_field kinds add a field of
	// their own each trial, so that every trial really migrates.
	call func(n int) string
}

const soakReference = `"references":{"table":"category","column":"id"}`

var soakKinds = []soakKind{
	{
		name: "add_field unique",
		call: func(n int) string {
			return fmt.Sprintf(`CALL migrate.add_field('item', '{"name":"u_%d","type":"Int","unique":true}')`, n)
		},
	},
	{
		name: "add_field references",
		call: func(n int) string {
			return fmt.Sprintf(`CALL migrate.add_field('item', '{"name":"r_%d","type":"Int",%s}')`, n, soakReference)
		},
	},
	{
		name:  "alter_field unique",
		reset: `CALL migrate.alter_field('item', '{"name":"code","type":"Int"}')`,
		call: func(int) string {
			return `CALL migrate.alter_field('item', '{"name":"code","type":"Int","unique":true}')`
		},
	},
	{
		name:  "alter_field references",
		reset: `CALL migrate.alter_field('item', '{"name":"cat","type":"Int"}')`,
		call: func(int) string {
			return `CALL migrate.alter_field('item', '{"name":"cat","type":"Int",` + soakReference + `}')`
		},
	},
}

// TestSoakCrashMidMigration interrupts multi-phase migrate commands on a
// table of soakItems rows at random moments, by killing the proxy with
// SIGKILL (four trials in five) or by ending the engine's backends with
// pg_terminate_backend (every fifth), and checks after each that nothing
// is stuck: the command run again ends applied or unchanged within
// soakBound, CALL migrate.verify() reports nothing for the org, and the
// tenant's schema holds no invalid index and no NOT VALID constraint.
//
// It runs only with PGMIGRATE_SOAK set (see soakTrials; bench/soak.md):
//
//	CGO_ENABLED=1 PGMIGRATE_SOAK=1 go test ./e2e/ -run Soak -count=1 -v -timeout 20m
func TestSoakCrashMidMigration(t *testing.T) {
	trials, ok := soakTrials()
	if !ok {
		t.Skip("crash soak: set PGMIGRATE_SOAK=N (trials; 1 for the default of 64) to run it")
	}
	seed := soakSeed(t)
	t.Logf("soak: %d trials, seed %d (PGMIGRATE_SOAK_SEED replays it)", trials, seed)
	s := newSoak(t, seed)
	s.measure()

	var stuck, interrupted int
	perKind, stuckPerKind, perFault := map[string]int{}, map[string]int{}, map[string]int{}
	failedChecks := map[string]int{}
	var minDelay, maxDelay, slowest time.Duration = math.MaxInt64, 0, 0
	started := time.Now()
	for n := 1; n <= trials; n++ {
		kind := soakKinds[s.rng.IntN(len(soakKinds))]
		fault := faultKill
		if n%5 == 0 {
			fault = faultTerminate
		}
		trialStart := time.Now()
		r := s.trial(n, kind, fault)
		took := time.Since(trialStart)
		slowest = max(slowest, took)
		perKind[kind.name]++
		perFault[fault]++
		minDelay, maxDelay = min(minDelay, r.delay), max(maxDelay, r.delay)
		if r.interrupted {
			interrupted++
		}
		verdict := "ok"
		if r.stuck() {
			stuck++
			stuckPerKind[kind.name]++
			for _, c := range r.failed {
				failedChecks[c]++
			}
			verdict = "STUCK (" + strings.Join(r.failed, ", ") + ")"
		}
		t.Logf("trial %d/%d %s, %s after %v: %s; %s (%v)", n, trials, kind.name, fault,
			r.delay.Round(time.Millisecond), strings.Join(r.notes, "; "), verdict, took.Round(time.Millisecond))
		if r.stuck() {
			logs := "proxy's last log lines:\n" + logTail(s.proxy.proc, 10)
			if fault == faultKill {
				logs = "killed proxy's last log lines:\n" + logTail(s.proxy.previous, 10) + "\n" + logs
			}
			t.Logf("trial %d stuck:\n  %s\n%s", n, strings.Join(r.problems, "\n  "), logs)
		}
	}
	elapsed := time.Since(started)

	var kinds, checks []string
	for _, k := range soakKinds {
		kinds = append(kinds, fmt.Sprintf("%s %d (%d stuck)", k.name, perKind[k.name], stuckPerKind[k.name]))
	}
	for _, c := range soakChecks {
		checks = append(checks, fmt.Sprintf("%s %d", c, failedChecks[c]))
	}
	t.Logf("soak summary: %d trials (%d %s, %d %s), %d stuck (failed checks: %s), %d interrupted mid-command; %s; fault delay %v..%v; %v per trial (slowest %v); seed %d",
		trials, perFault[faultKill], faultKill, perFault[faultTerminate], faultTerminate,
		stuck, strings.Join(checks, ", "), interrupted, strings.Join(kinds, ", "),
		minDelay.Round(time.Millisecond), maxDelay.Round(time.Millisecond),
		(elapsed / time.Duration(trials)).Round(time.Millisecond), slowest.Round(time.Millisecond), seed)
	if stuck > 0 {
		t.Errorf("%d of %d trials left a stuck state (see the trial logs above)", stuck, trials)
	}
}

// soak is the running soak: the tenant, its proxy and what it measured.
type soak struct {
	t      *testing.T
	rng    *rand.Rand
	proxy  *soakProxy
	direct *pgx.Conn // the superuser, straight to the database
	// uncontended is how long each kind took, measured once, alone.
	uncontended map[string]time.Duration
}

// newSoak makes the tenant with its two tables, filled, behind a proxy
// whose engine connections carry application_name soakEngineApp.
func newSoak(t *testing.T, seed uint64) *soak {
	tn := newTenants(t, soakOrg)
	dsn := cluster.DSN("postgres", tn.db)
	config := strings.Replace(tn.config(""), dsn, dsn+"&application_name="+soakEngineApp, 1)
	s := &soak{
		t:           t,
		rng:         rand.New(rand.NewPCG(seed, seed>>32|1)),
		proxy:       newSoakProxy(t, config),
		direct:      directConn(t, tn.db),
		uncontended: map[string]time.Duration{},
	}
	// The tenant role may write the engine's tables: the rows go in
	// through the proxy, as a tenant's would.
	conn := migrateConn(t, s.proxy.proc, "postgres", "", soakOrg)
	mustExec(t, conn, soakCategory)
	mustExec(t, conn, soakItem)
	mustExec(t, conn, "INSERT INTO category (id, label) SELECT g, 'category ' || g FROM generate_series(1, 10) g")
	started := time.Now()
	if _, err := conn.Exec(t.Context(), fmt.Sprintf(
		"INSERT INTO item (id, name, code, cat) SELECT g, 'item ' || g, g, g %% 10 + 1 FROM generate_series(1, %d) g", soakItems)); err != nil {
		t.Fatalf("filling item: %v", err)
	}
	mustExec(t, s.direct, "VACUUM ANALYZE soak.item, soak.category")
	t.Logf("soak: %d rows in %s.item in %v", soakItems, soakOrg, time.Since(started).Round(time.Millisecond))
	// pg_terminate_backend must hit the engine's backends only, not the
	// sessions of clients.
	if app := queryValue[string](t, conn, "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"); app == soakEngineApp {
		t.Fatalf("a client session's backend has the engine's application_name %q", app)
	}
	return s
}

// measure runs each kind once, uncontended, and keeps how long it took.
func (s *soak) measure() {
	t := s.t
	url := s.proxy.url(soakOrg)
	for _, k := range soakKinds {
		if k.reset != "" {
			if _, err := soakStatus(soakQuery(t.Context(), url, k.reset)); err != nil {
				t.Fatalf("%s: reset: %v", k.name, err)
			}
		}
		conn, err := soakConnect(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		started := time.Now()
		status, err := soakStatus(soakRows(t.Context(), conn, k.call(0)))
		took := time.Since(started)
		conn.Close(context.Background())
		if err != nil || status != "applied" {
			t.Fatalf("%s, uncontended: status %q, %v", k.name, status, err)
		}
		s.uncontended[k.name] = took
		t.Logf("soak: %s takes %v uncontended", k.name, took.Round(time.Millisecond))
	}
	if n := queryValue[int64](t, s.direct, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", soakEngineApp); n == 0 {
		t.Fatalf("no backend has application_name %q: pg_terminate_backend would find nothing", soakEngineApp)
	}
}

// The checks a trial makes; a trial that fails any is stuck.
const (
	checkSetup    = "setup"    // resetting the column, connecting, injecting the fault
	checkRerun    = "re-run"   // (a) the command again ends applied or unchanged
	checkBackends = "backends" // the engine's backends go idle within soakBound
	checkVerify   = "verify"   // (b) CALL migrate.verify() reports nothing
	checkCatalog  = "catalog"  // (c) no invalid index, no NOT VALID constraint
)

var soakChecks = []string{checkSetup, checkRerun, checkBackends, checkVerify, checkCatalog}

// trialResult is what one trial saw.
type trialResult struct {
	delay       time.Duration // from sending the command to the fault
	interrupted bool          // the command had not answered applied before the fault
	notes       []string      // what happened, for the trial's log line
	failed      []string      // the checks it failed
	problems    []string      // what each failed check saw
}

// fail records that check failed and what it saw.
func (r *trialResult) fail(check, format string, args ...any) {
	if !slices.Contains(r.failed, check) {
		r.failed = append(r.failed, check)
	}
	r.problems = append(r.problems, check+": "+fmt.Sprintf(format, args...))
}

func (r *trialResult) stuck() bool { return len(r.failed) > 0 }

// trial sends the command of kind for trial n on a connection of its own,
// injects fault after a random delay of up to 1.5 times the command's
// uncontended duration, and checks what is left.
func (s *soak) trial(n int, kind soakKind, fault string) (r trialResult) {
	ctx := s.t.Context()
	url := s.proxy.url(soakOrg)
	if kind.reset != "" {
		if _, err := soakStatus(soakQuery(ctx, url, kind.reset)); err != nil {
			r.fail(checkSetup, "reset before the command: %v", err)
			return r
		}
	}
	call := kind.call(n)
	conn, err := soakConnect(ctx, url)
	if err != nil {
		r.fail(checkSetup, "connecting: %v", err)
		return r
	}
	defer conn.Close(context.Background())
	answer := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, soakBound)
		defer cancel()
		_, err := soakStatus(soakRows(ctx, conn, call))
		answer <- err
	}()

	r.delay = time.Duration(s.rng.Int64N(int64(s.uncontended[kind.name])*3/2 + 1))
	time.Sleep(r.delay)
	switch fault {
	case faultKill:
		s.proxy.restart()
	case faultTerminate:
		ended, err := terminateEngine(ctx, s.direct)
		if err != nil {
			r.fail(checkSetup, "pg_terminate_backend: %v", err)
		}
		r.notes = append(r.notes, fmt.Sprintf("%d engine backends ended", ended))
	}
	if err := <-answer; err != nil {
		r.interrupted = true
		r.notes = append(r.notes, "command got: "+firstLine(err.Error()))
	} else {
		r.notes = append(r.notes, "command applied")
	}

	// (a) The command again, to its end. Should it fail, once more, to
	// tell a one-off error from a state the command cannot get past.
	status, took, err := rerun(ctx, url, call)
	if err != nil {
		r.fail(checkRerun, "after %v: %v", took.Round(time.Millisecond), err)
		status, took, err = rerun(ctx, url, call)
		if err != nil {
			r.fail(checkRerun, "again, after %v: %v", took.Round(time.Millisecond), err)
		} else {
			r.notes = append(r.notes, fmt.Sprintf("re-run failed, again %s in %v", status, took.Round(time.Millisecond)))
		}
	} else {
		r.notes = append(r.notes, fmt.Sprintf("re-run %s in %v", status, took.Round(time.Millisecond)))
	}
	// What a killed proxy's backends were still doing has ended by now, or
	// the catalog check would see an index being built.
	seen, left, err := waitEngineIdle(ctx, s.direct, soakBound)
	switch {
	case err != nil:
		r.fail(checkBackends, "reading pg_stat_activity: %v", err)
	case len(left) > 0:
		r.fail(checkBackends, "busy after %v: %s", soakBound, strings.Join(left, "; "))
	case len(seen) > 0:
		r.notes = append(r.notes, fmt.Sprintf("waited for %d busy engine backends", len(seen)))
	}
	// (b) verify, for the org of the session.
	drift, err := verifyProblems(ctx, url)
	if err != nil {
		r.fail(checkVerify, "CALL migrate.verify(): %v", err)
	}
	for _, d := range drift {
		r.fail(checkVerify, "%s", d)
	}
	// (c) The live catalog.
	leftovers, err := catalogProblems(ctx, s.direct, soakOrg)
	if err != nil {
		r.fail(checkCatalog, "reading the catalog: %v", err)
	}
	for _, l := range leftovers {
		r.fail(checkCatalog, "%s", l)
	}
	return r
}

// rerun runs call on a new connection to url, bounded by soakBound, and
// says how long it took.
func rerun(ctx context.Context, url, call string) (status string, took time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, soakBound)
	defer cancel()
	started := time.Now()
	status, err = soakStatus(soakQuery(ctx, url, call))
	return status, time.Since(started), err
}

// firstLine is s up to its first newline.
func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}
