package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pgmigrate/pgmigrate-proxy/engine"
	"github.com/pgmigrate/pgmigrate-proxy/metrics"
)

func TestCommand(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.Command("create_model", "applied", "", 2*time.Second)
	m.Command("create_model", "unchanged", "", 500*time.Millisecond)
	m.Command("create_model", "applied", "", time.Second)
	m.Command("describe", "error", "42P01", 10*time.Millisecond)

	wantSeries(t, reg, `
# HELP pgmigrate_migrate_commands_total Migrate commands run, by procedure, status (applied, unchanged, planned, ok or error) and SQLSTATE (of an error).
# TYPE pgmigrate_migrate_commands_total counter
pgmigrate_migrate_commands_total{procedure="create_model",sqlstate="",status="applied"} 2
pgmigrate_migrate_commands_total{procedure="create_model",sqlstate="",status="unchanged"} 1
pgmigrate_migrate_commands_total{procedure="describe",sqlstate="42P01",status="error"} 1
`, "pgmigrate_migrate_commands_total")
	wantHistogram(t, reg, "pgmigrate_migrate_command_duration_seconds", map[string]string{"procedure": "create_model"}, 3, 3.5)
	wantHistogram(t, reg, "pgmigrate_migrate_command_duration_seconds", map[string]string{"procedure": "describe"}, 1, 0.01)
}

func TestRecorder(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	crm, sales := m.Recorder("main", "crm"), m.Recorder("main", "sales")
	crm.LockWaited(1500 * time.Millisecond)
	sales.LockWaited(500 * time.Millisecond)
	crm.Retried("55P03")
	sales.Retried("55P03")
	crm.Retried("")
	crm.Recovered(engine.RecoveryCompleted)
	sales.Recovered(engine.RecoveryUndone)
	crm.Unfinished(3)
	crm.Unfinished(1)
	sales.Unfinished(0)

	wantSeries(t, reg, `
# HELP pgmigrate_migrate_retries_total Attempts that failed with a transient error and were tried again, by SQLSTATE (connection for a lost connection).
# TYPE pgmigrate_migrate_retries_total counter
pgmigrate_migrate_retries_total{sqlstate="55P03"} 2
pgmigrate_migrate_retries_total{sqlstate="connection"} 1
# HELP pgmigrate_migrate_intents_recovered_total Unfinished intents closed by recovery, by outcome (completed or undone).
# TYPE pgmigrate_migrate_intents_recovered_total counter
pgmigrate_migrate_intents_recovered_total{outcome="completed"} 1
pgmigrate_migrate_intents_recovered_total{outcome="undone"} 1
# HELP pgmigrate_migrate_intents_unfinished Unfinished intents of an upstream database, as its engine's last sweep found them.
# TYPE pgmigrate_migrate_intents_unfinished gauge
pgmigrate_migrate_intents_unfinished{database="crm",upstream="main"} 1
pgmigrate_migrate_intents_unfinished{database="sales",upstream="main"} 0
`, "pgmigrate_migrate_retries_total", "pgmigrate_migrate_intents_recovered_total", "pgmigrate_migrate_intents_unfinished")
	wantHistogram(t, reg, "pgmigrate_migrate_lock_wait_seconds", nil, 2, 2)
}

// TestRecorderUnfinishedBeforeSweep: an engine's gauge appears with its
// first sweep, not when its recorder is made.
func TestRecorderUnfinishedBeforeSweep(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics.New(reg).Recorder("main", "crm")
	if n, err := testutil.GatherAndCount(reg, "pgmigrate_migrate_intents_unfinished"); err != nil || n != 0 {
		t.Errorf("%d series of pgmigrate_migrate_intents_unfinished before a sweep (%v), want none", n, err)
	}
}

// wantSeries compares the named series of reg with want, in the text
// format.
func wantSeries(t *testing.T, reg *prometheus.Registry, want string, names ...string) {
	t.Helper()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}

// wantHistogram checks the count and sum of the histogram series of name
// with labels.
func wantHistogram(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string, count uint64, sum float64) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			h := m.GetHistogram()
			if h.GetSampleCount() != count || h.GetSampleSum() != sum {
				t.Errorf("%s%v: count %d, sum %v; want %d, %v", name, labels, h.GetSampleCount(), h.GetSampleSum(), count, sum)
			}
			return
		}
	}
	t.Errorf("no series %s%v", name, labels)
}
