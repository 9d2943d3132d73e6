package e2e

import (
	"strings"
	"testing"
)

// TestMetricsMigrateCommands runs migrate commands through the proxy and
// finds them in /metrics, next to the server's series and the Go runtime's
// and the process's.
func TestMetricsMigrateCommands(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	conn := migrateConn(t, p, "postgres", "", "acme")
	mustExec(t, conn, createInvoice)
	mustExec(t, conn, createInvoice)
	wantExecError(t, conn, `CALL migrate.describe('nosuch')`, "42P01")

	series := metrics(t, p) // which checks the server's series are there
	for name, want := range map[string]float64{
		`pgmigrate_migrate_commands_total{procedure="create_model",sqlstate="",status="applied"}`:   1,
		`pgmigrate_migrate_commands_total{procedure="create_model",sqlstate="",status="unchanged"}`: 1,
		`pgmigrate_migrate_commands_total{procedure="describe",sqlstate="42P01",status="error"}`:    1,
		`pgmigrate_migrate_command_duration_seconds_count{procedure="create_model"}`:                2,
		`pgmigrate_migrate_command_duration_seconds_bucket{procedure="create_model",le="+Inf"}`:     2,
	} {
		if got, ok := series[name]; !ok || got != want {
			t.Errorf("%s = %v (present: %v), want %v", name, got, ok, want)
		}
	}
	if series[metricConnsTotal] != 1 || series[metricConns] != 1 {
		t.Errorf("%s = %v and %s = %v with one session open", metricConnsTotal, series[metricConnsTotal], metricConns, series[metricConns])
	}
	if series["go_goroutines"] < 1 {
		t.Errorf("go_goroutines = %v", series["go_goroutines"])
	}
	for _, name := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds", "process_open_fds"} {
		if _, ok := series[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	for name := range series {
		if strings.Contains(name, `org="`) {
			t.Errorf("series with an org label: %s", name)
		}
	}
}
