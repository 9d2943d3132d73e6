package proxy_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pgmigrate/pgmigrate-proxy/metrics"
	"github.com/pgmigrate/pgmigrate-proxy/proxy"
)

// TestAdminHandlerMetrics scrapes /metrics: the server's series keep their
// names, types and labels, next to the migration series.
func TestAdminHandlerMetrics(t *testing.T) {
	m := &proxy.Metrics{}
	m.ClientConns.Add(2)
	m.ClientConnsTotal.Add(7)
	m.BytesFromClients.Add(100)
	m.BytesFromUpstreams.Add(2500)
	m.UpstreamConnectErrors.Add(1)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	migrations := metrics.New(reg)
	migrations.Command("add_field", "applied", "", 40*time.Millisecond)
	migrations.Command("add_field", "error", "42P01", 3*time.Millisecond)
	srv := httptest.NewServer(proxy.AdminHandler(reg, func(context.Context) error { return nil }))
	defer srv.Close()

	want := `# HELP pgmigrate_client_connections Open client connections.
# TYPE pgmigrate_client_connections gauge
pgmigrate_client_connections 2
# HELP pgmigrate_client_connections_total Client connections accepted.
# TYPE pgmigrate_client_connections_total counter
pgmigrate_client_connections_total 7
# HELP pgmigrate_relayed_bytes_total Bytes relayed, by direction.
# TYPE pgmigrate_relayed_bytes_total counter
pgmigrate_relayed_bytes_total{direction="client_to_upstream"} 100
pgmigrate_relayed_bytes_total{direction="upstream_to_client"} 2500
# HELP pgmigrate_upstream_connect_errors_total Failed upstream connection attempts.
# TYPE pgmigrate_upstream_connect_errors_total counter
pgmigrate_upstream_connect_errors_total 1
# HELP pgmigrate_migrate_commands_total Migrate commands run, by procedure, status (applied, unchanged, planned, ok or error) and SQLSTATE (of an error).
# TYPE pgmigrate_migrate_commands_total counter
pgmigrate_migrate_commands_total{procedure="add_field",sqlstate="",status="applied"} 1
pgmigrate_migrate_commands_total{procedure="add_field",sqlstate="42P01",status="error"} 1
`
	err := testutil.ScrapeAndCompare(srv.URL+"/metrics", strings.NewReader(want),
		"pgmigrate_client_connections", "pgmigrate_client_connections_total", "pgmigrate_relayed_bytes_total",
		"pgmigrate_upstream_connect_errors_total", "pgmigrate_migrate_commands_total")
	if err != nil {
		t.Error(err)
	}
}

func TestAdminHandlerHealth(t *testing.T) {
	for _, tc := range []struct {
		ready     error
		wantReady int
	}{
		{nil, http.StatusOK},
		{errors.New("upstream down"), http.StatusServiceUnavailable},
	} {
		srv := httptest.NewServer(proxy.AdminHandler(prometheus.NewRegistry(), func(context.Context) error { return tc.ready }))
		defer srv.Close()
		for path, want := range map[string]int{"/healthz": http.StatusOK, "/readyz": tc.wantReady} {
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("ready says %v: GET %s = %d, want %d", tc.ready, path, resp.StatusCode, want)
			}
		}
	}
}
