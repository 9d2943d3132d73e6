package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgmigrate/pgmigrate-proxy/internal/pgtest"
)

// The tests of this file stop an operation after each of its phases, as a
// crash would (the process abandoning it, its connections killed,
// PostgreSQL restarted, the process killed with SIGKILL), then let
// another engine recover, and check that the table, the metadata, the
// history and verify() agree, and that the same operation run again
// converges.

// errFault is what the fault hook returns to abandon an operation.
var errFault = errors.New("fault injected")

// faultCase is an operation on the converge database (newConvergeDB),
// after setup, and the number of phases its plan has there.
type faultCase struct {
	name   string
	setup  func(t *testing.T, db *testDB)
	op     Operation
	model  string
	phases int
}

func faultCases() []faultCase {
	customerRef := &Reference{Table: "customer", Column: "id"}
	addCustomer := func(t *testing.T, db *testDB) {
		db.apply(t, "acme", &AddField{Model: "invoice", Field: FieldSpec{Name: "customer", Type: Int}})
	}
	return []faultCase{
		{name: "add unique", model: "invoice", phases: 3,
			op: &AddField{Model: "invoice", Field: FieldSpec{Name: "code", Type: String, Unique: true}}},
		{name: "add references", model: "invoice", phases: 3,
			op: &AddField{Model: "invoice", Field: FieldSpec{Name: "customer", Type: Int, References: customerRef}}},
		{name: "add unique references", model: "invoice", phases: 5,
			op: &AddField{Model: "invoice", Field: FieldSpec{Name: "customer", Type: Int, Unique: true, References: customerRef}}},
		{name: "alter unique", model: "invoice", phases: 2,
			op: &AlterField{Model: "invoice", Field: FieldSpec{Name: "name", Type: String, Unique: true}}},
		{name: "alter references", model: "invoice", phases: 2, setup: addCustomer,
			op: &AlterField{Model: "invoice", Field: FieldSpec{Name: "customer", Type: Int, References: customerRef}}},
		{name: "alter references elsewhere", model: "invoice", phases: 2,
			setup: func(t *testing.T, db *testDB) {
				db.apply(t, "acme", &AddField{Model: "invoice", Field: FieldSpec{Name: "customer", Type: Int, References: customerRef}})
			},
			op: &AlterField{Model: "invoice", Field: FieldSpec{Name: "customer", Type: Int, References: &Reference{Table: "invoice", Column: "id"}}}},
		{name: "alter not null", model: "invoice", phases: 1,
			op: &AlterField{Model: "invoice", Field: FieldSpec{Name: "name", Type: String, Nullable: nullable(false), Default: json.RawMessage(`"x"`)}}},
		{name: "add not null", model: "invoice", phases: 1,
			op: &AddField{Model: "invoice", Field: FieldSpec{Name: "state", Type: String, Nullable: nullable(false), Default: json.RawMessage(`"new"`)}}},
		{name: "create unique references", model: "line", phases: 1,
			op: &CreateModel{Model: "line", Fields: []FieldSpec{{Name: "id", Type: Int, PrimaryKey: true},
				{Name: "code", Type: String, Unique: true}, {Name: "invoice", Type: Int, References: &Reference{Table: "invoice", Column: "id"}}}}},
		{name: "rename", model: "invoice", phases: 1, op: &RenameField{Model: "invoice", From: "name", To: "title"}},
		{name: "drop field", model: "invoice", phases: 1, op: &DropField{Model: "invoice", Field: "name"}},
		{name: "drop model", model: "customer", phases: 1, op: &DropModel{Model: "customer"}},
	}
}

// faults stop an operation where the hook runs, and return errFault.
// After abandon, another engine recovers, as another replica would; after
// the others, the same engine, whose pool then holds dead connections.
var faults = []struct {
	name    string
	stop    func(t *testing.T, db *testDB) error
	sameEng bool
}{
	{"abandon", func(*testing.T, *testDB) error { return errFault }, false},
	{"terminate", func(t *testing.T, db *testDB) error {
		db.exec(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
		db.pool.Reset()
		return errFault
	}, true},
	{"restart", func(t *testing.T, db *testDB) error {
		if err := cluster.Kill(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := cluster.Restart(context.Background()); err != nil {
			t.Fatal(err)
		}
		db.pool.Reset()
		return errFault
	}, true},
}

func TestRecoveryAfterEachPhase(t *testing.T) {
	for _, c := range faultCases() {
		for phase := range c.phases {
			for _, f := range faults {
				if f.name == "restart" && c.phases == 1 {
					continue // nothing committed: a restart adds nothing to abandon
				}
				t.Run(fmt.Sprintf("%s/phase %d/%s", c.name, phase, f.name), func(t *testing.T) {
					db := newFaultDB(t, c)
					db.engine.fault = faultOnce(phase, func() error { return f.stop(t, db) })
					if _, err := db.engine.Apply(testCtx(t), "acme", c.op); !errors.Is(err, errFault) {
						t.Fatalf("apply: %v, want the fault", err)
					}
					recoverer := db.engine
					if !f.sameEng {
						recoverer = db.newEngine(t, testOptions())
					}
					checkRecovers(t, db, c, phase, recoverer)
				})
			}
		}
	}
}

func TestRecoveryAfterSIGKILL(t *testing.T) {
	for _, c := range faultCases() {
		for phase := range c.phases {
			t.Run(fmt.Sprintf("%s/phase %d", c.name, phase), func(t *testing.T) {
				db := newFaultDB(t, c)
				runKilledChild(t, db, c.op, phase)
				checkRecovers(t, db, c, phase, db.newEngine(t, testOptions()))
			})
		}
	}
}

// faultOnce is a fault hook that runs stop at phase, once.
func faultOnce(phase int, stop func() error) func(context.Context, string, int) error {
	var fired bool
	return func(_ context.Context, _ string, at int) error {
		if at != phase || fired {
			return nil
		}
		fired = true
		return stop()
	}
}

// newFaultDB is the converge database after c's setup, its engine on a
// pool of its own.
func newFaultDB(t *testing.T, c faultCase) *testDB {
	t.Helper()
	db := newConvergeDB(t)
	if c.setup != nil {
		c.setup(t, db)
	}
	db.engine = db.newEngine(t, testOptions())
	if n := planPhases(t, db, c.op); n != c.phases {
		t.Fatalf("%s has %d phases here, the case says %d", c.op.Kind(), n, c.phases)
	}
	return db
}

// planPhases counts the phases the engine runs for op now.
func planPhases(t *testing.T, db *testDB, op Operation) int {
	t.Helper()
	pc, err := db.engine.acquire(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Release()
	p, _, err := db.engine.plan(testCtx(t), pc.Conn(), "acme", op)
	if err != nil {
		t.Fatal(err)
	}
	return len(runPhases(p))
}

// abandonAt applies c's operation on db's engine, abandoning it after
// phase phases, as a crash would.
func abandonAt(t *testing.T, db *testDB, c faultCase, phase int) {
	t.Helper()
	db.engine.fault = faultOnce(phase, func() error { return errFault })
	if _, err := db.engine.Apply(testCtx(t), "acme", c.op); !errors.Is(err, errFault) {
		t.Fatalf("apply: %v, want the fault", err)
	}
}

// checkRecovers lets e recover an operation stopped after phase phases,
// then checks that it is complete (nothing if it stopped before its first
// phase), that metadata, table, history and verify() agree, and that
// running it again converges.
func checkRecovers(t *testing.T, db *testDB, c faultCase, phase int, e *Engine) {
	t.Helper()
	ctx := testCtx(t)
	before := historyRows(t, db, "acme")
	recoverAll(t, e)
	wantHistory := before
	if phase > 0 {
		wantHistory++
	}
	if got := historyRows(t, db, "acme"); got != wantHistory {
		t.Errorf("history rows after recovery: %d, want %d", got, wantHistory)
	}
	r, err := e.Apply(ctx, "acme", c.op)
	if err != nil {
		t.Fatalf("re-run: %v", err)
	}
	want := Unchanged
	if phase == 0 {
		want = Applied
	}
	if r.Status != want {
		t.Errorf("re-run: %s, want %s", r.Status, want)
	}
	checkClean(t, db, e, c.model)
}

// recoverAll runs e's sweep until no intent is left unfinished: a tenant's
// lock is still held for a moment by the backend of a process just
// killed.
func recoverAll(t *testing.T, e *Engine) {
	t.Helper()
	ctx := testCtx(t)
	for {
		n, err := e.RecoverAll(ctx)
		if err == nil && n == 0 {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("recovery: %d unfinished, %v", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkClean checks that model's metadata and table agree (if it has
// metadata), that verify() finds nothing and that no intent is left.
func checkClean(t *testing.T, db *testDB, e *Engine, model string) {
	t.Helper()
	if scalar[bool](t, db, "SELECT EXISTS (SELECT 1 FROM pgmigrate.models WHERE org = 'acme' AND model = $1)", model) {
		checkAgree(t, db, "acme", "acme", model)
	}
	drifts, err := e.Verify(testCtx(t), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(drifts) > 0 {
		t.Errorf("verify: %+v", drifts)
	}
	if n := scalar[int](t, db, "SELECT count(*)::int FROM pgmigrate.intents"); n != 0 {
		t.Errorf("%d intents left", n)
	}
}

// The child process of runKilledChild: it applies an operation and kills
// itself with SIGKILL where the fault hook runs at the phase it is told.
const childEnv = "PGMIGRATE_ENGINE_TEST_CHILD"

type childOrder struct {
	DSN   string
	Kind  string
	Spec  json.RawMessage
	Phase int
}

// runKilledChild applies op in a child process that SIGKILLs itself after
// phase phases, and waits for it to die so.
func runKilledChild(t *testing.T, db *testDB, op Operation, phase int) {
	t.Helper()
	spec, err := json.Marshal(op)
	if err != nil {
		t.Fatal(err)
	}
	order, err := json.Marshal(childOrder{DSN: cluster.DSN(pgtest.Superuser, db.name), Kind: op.Kind(), Spec: spec, Phase: phase})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(testCtx(t), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(order))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v, want killed by SIGKILL; output:\n%s", err, out)
	}
}

// runChild is the child process's main: it exits 1 if the operation ends
// at all.
func runChild(order string) int {
	var o childOrder
	if err := json.Unmarshal([]byte(order), &o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	op := decodeOperation(o.Kind, o.Spec)
	if op == nil {
		fmt.Fprintln(os.Stderr, "cannot decode", o.Kind)
		return 2
	}
	cfg, err := pgxpool.ParseConfig(o.DSN)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ConfigurePool(cfg)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	e := New(pool, testOptions())
	e.fault = func(_ context.Context, _ string, phase int) error {
		if phase == o.Phase {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
		return nil
	}
	_, err = e.Apply(context.Background(), "acme", op)
	fmt.Fprintln(os.Stderr, "operation ended: "+strconv.Quote(fmt.Sprint(err)))
	return 1
}

// An intent that can no longer be completed (duplicates arrived in the
// column of a unique index before it was built) is undone: the column it
// added is dropped, and no history row is written.
func TestRecoveryUndoesWhatCannotComplete(t *testing.T) {
	c := faultCases()[0]
	db := newFaultDB(t, c)
	abandonAt(t, db, c, 1)
	db.exec(t, "UPDATE acme.invoice SET code = 'same'")
	before := historyRows(t, db, "acme")
	drifts, err := db.engine.Verify(testCtx(t), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if !hasDrift(drifts, UnfinishedIntent) {
		t.Errorf("verify before recovery: %+v, want an unfinished intent", drifts)
	}
	rec := &countingRecorder{unfinished: -1}
	opts := testOptions()
	opts.Recorder = rec
	recoverAll(t, db.newEngine(t, opts))
	if rec.recovered[RecoveryUndone] != 1 || rec.unfinished != 0 {
		t.Errorf("recorder heard %d undone recoveries, %d unfinished; want 1 and 0", rec.recovered[RecoveryUndone], rec.unfinished)
	}
	if got := historyRows(t, db, "acme"); got != before {
		t.Errorf("history rows %d -> %d", before, got)
	}
	if findColumn(liveColumns(t, db, "acme", "invoice"), "code") != nil {
		t.Error("the column of the undone add_field is still there")
	}
	checkClean(t, db, db.engine, "invoice")
	wantApplied(t, db.apply(t, "acme", c.op), "CREATE UNIQUE INDEX CONCURRENTLY")
	checkClean(t, db, db.engine, "invoice")
}

// An undo that fails stops there: the intent's row is marked undoing and
// keeps only the statements not yet run, so the next recovery runs those
// (and nothing twice), once what stopped it is gone.
func TestRecoveryUndoStopsAndResumes(t *testing.T) {
	c := faultCases()[0]
	db := newFaultDB(t, c)
	abandonAt(t, db, c, 2)
	// Undone, as one that had failed is (its index built, two statements
	// to undo), but dropping the column fails: a view depends on it.
	db.exec(t, "UPDATE pgmigrate.intents SET undoing = true")
	before := scalar[[]string](t, db, "SELECT undo FROM pgmigrate.intents")
	db.exec(t, "CREATE VIEW acme.codes AS SELECT code FROM acme.invoice")
	if n, err := db.engine.RecoverAll(testCtx(t)); err == nil || n != 1 {
		t.Fatalf("recovery with a view on the column: %d unfinished, %v; want it left, with an error", n, err)
	}
	after := scalar[[]string](t, db, "SELECT undo FROM pgmigrate.intents")
	if !scalar[bool](t, db, "SELECT undoing FROM pgmigrate.intents") || len(after) == 0 || len(after) >= len(before) ||
		!slices.Equal(after, before[len(before)-len(after):]) {
		t.Fatalf("undo left %q of %q (the row must be undoing, with the statements not run)", after, before)
	}
	db.exec(t, "DROP VIEW acme.codes")
	recoverAll(t, db.newEngine(t, testOptions()))
	if findColumn(liveColumns(t, db, "acme", "invoice"), "code") != nil {
		t.Error("the column of the undone add_field is still there")
	}
	checkClean(t, db, db.engine, "invoice")
}

// The next command for the tenant, on another engine, recovers its
// unfinished intent before it runs.
func TestNextCommandRecoversFirst(t *testing.T) {
	c := faultCases()[0]
	db := newFaultDB(t, c)
	abandonAt(t, db, c, 2)
	rec := &countingRecorder{}
	opts := testOptions()
	opts.Recorder = rec
	other := db.newEngine(t, opts)
	next := &AddField{Model: "invoice", Field: FieldSpec{Name: "note", Type: String}}
	if r, err := other.Apply(testCtx(t), "acme", next); err != nil || r.Status != Applied {
		t.Fatalf("next command: %+v, %v", r, err)
	}
	h := history(t, db, "acme")
	if n := len(h); n < 2 || h[n-2].Field != "code" || h[n-1].Field != "note" {
		t.Fatalf("history ends %+v, want code's add_field completed, then note's", h[max(0, len(h)-2):])
	}
	if m := checkAgree(t, db, "acme", "acme", "invoice"); !m.Field("code").Unique {
		t.Error("code is not unique after recovery")
	}
	checkClean(t, db, other, "invoice")
	if rec.recovered[RecoveryCompleted] != 1 || rec.lockWaits != 1 {
		t.Errorf("recorder heard %d completed recoveries and %d lock waits, want 1 and 1", rec.recovered[RecoveryCompleted], rec.lockWaits)
	}
}

// countingRecorder counts what an engine reports.
type countingRecorder struct {
	mu         sync.Mutex
	lockWaits  int
	retries    map[string]int
	recovered  map[string]int
	unfinished int
}

func (r *countingRecorder) LockWaited(time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lockWaits++
}

func (r *countingRecorder) Retried(sqlstate string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.retries == nil {
		r.retries = map[string]int{}
	}
	r.retries[sqlstate]++
}

func (r *countingRecorder) Recovered(outcome string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.recovered == nil {
		r.recovered = map[string]int{}
	}
	r.recovered[outcome]++
}

func (r *countingRecorder) Unfinished(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unfinished = n
}

// A sweep leaves alone a tenant whose lock a running command holds.
func TestSweepSkipsHeldLock(t *testing.T) {
	c := faultCases()[0]
	db := newFaultDB(t, c)
	abandonAt(t, db, c, 1)
	lock, _, unlock, err := db.engine.lockTenant(testCtx(t), "acme", true)
	if err != nil || lock == nil {
		t.Fatalf("lock: %v", err)
	}
	other := db.newEngine(t, testOptions())
	if n, err := other.RecoverAll(testCtx(t)); err != nil || n != 1 {
		t.Errorf("sweep while the lock is held: %d unfinished, %v; want 1", n, err)
	}
	unlock()
	recoverAll(t, other)
	checkClean(t, db, other, "invoice")
}

// hasDrift reports whether drifts has one of kind.
func hasDrift(drifts []Drift, kind string) bool {
	for _, d := range drifts {
		if d.Kind == kind {
			return true
		}
	}
	return false
}

// An intent whose undo names an index that is now another kind of object
// (a tenant made a table of that name) is undone all the same, not left
// for ever: what the statement would undo is not there.
func TestRecoveryUndoesPastAnotherObject(t *testing.T) {
	c := faultCases()[0]
	db := newFaultDB(t, c)
	abandonAt(t, db, c, 2)
	db.exec(t, "DROP INDEX acme.invoice_code_key; CREATE TABLE acme.invoice_code_key ()")
	recoverAll(t, db.newEngine(t, testOptions()))
	if findColumn(liveColumns(t, db, "acme", "invoice"), "code") != nil {
		t.Error("the column of the undone add_field is still there")
	}
	if !tableExists(t, db, "acme", "invoice_code_key") {
		t.Error("the table named like the index is gone")
	}
}

// A recovery stopped after a phase of its own is recovered in turn: the
// intent stays until an engine completes it.
func TestRecoveryStoppedInTurn(t *testing.T) {
	c := faultCases()[0]
	db := newFaultDB(t, c)
	abandonAt(t, db, c, 1)
	second := db.newEngine(t, testOptions())
	second.fault = faultOnce(1, func() error { return errFault })
	if n, err := second.RecoverAll(testCtx(t)); !errors.Is(err, errFault) || n != 1 {
		t.Fatalf("recovery stopped after its index build: %d unfinished, %v; want 1 and the fault", n, err)
	}
	if got := indexesOn(t, db, "acme", "invoice", "code"); len(got) != 1 {
		t.Fatalf("indexes on code after the stopped recovery: %+v, want the one it built", got)
	}
	checkRecovers(t, db, c, 1, db.newEngine(t, testOptions()))
}

// An intent this engine cannot read (an operation it does not know), or
// whose operation is not valid, is undone, not left for ever or crashing
// the sweep.
func TestRecoveryUndoesUnreadableIntent(t *testing.T) {
	for _, spoil := range []string{
		"UPDATE pgmigrate.intents SET operation = 'from_a_newer_engine'",
		`UPDATE pgmigrate.intents SET spec = jsonb_set(spec, '{Model}', '"not a model name!"')`,
	} {
		t.Run(spoil, func(t *testing.T) {
			c := faultCases()[0]
			db := newFaultDB(t, c)
			abandonAt(t, db, c, 1)
			db.exec(t, spoil)
			rec := &countingRecorder{}
			opts := testOptions()
			opts.Recorder = rec
			recoverAll(t, db.newEngine(t, opts))
			if rec.recovered[RecoveryUndone] != 1 {
				t.Errorf("recoveries %v, want one undone", rec.recovered)
			}
			if findColumn(liveColumns(t, db, "acme", "invoice"), "code") != nil {
				t.Error("the column of the undone intent is still there")
			}
			checkClean(t, db, db.engine, "invoice")
		})
	}
}
