package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// Metrics counts what the server does. All fields are safe for concurrent
// use; the zero value is ready.
type Metrics struct {
	ClientConns           atomic.Int64 // open client connections
	ClientConnsTotal      atomic.Int64 // client connections accepted
	BytesFromClients      atomic.Int64 // relayed client -> upstream
	BytesFromUpstreams    atomic.Int64 // relayed upstream -> client
	UpstreamConnectErrors atomic.Int64 // failed upstream connection attempts
}

// WriteTo writes m in the Prometheus text exposition format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	n, err := fmt.Fprintf(w, `# HELP pgmigrate_client_connections Open client connections.
# TYPE pgmigrate_client_connections gauge
pgmigrate_client_connections %d
# HELP pgmigrate_client_connections_total Client connections accepted.
# TYPE pgmigrate_client_connections_total counter
pgmigrate_client_connections_total %d
# HELP pgmigrate_relayed_bytes_total Bytes relayed, by direction.
# TYPE pgmigrate_relayed_bytes_total counter
pgmigrate_relayed_bytes_total{direction="client_to_upstream"} %d
pgmigrate_relayed_bytes_total{direction="upstream_to_client"} %d
# HELP pgmigrate_upstream_connect_errors_total Failed upstream connection attempts.
# TYPE pgmigrate_upstream_connect_errors_total counter
pgmigrate_upstream_connect_errors_total %d
`, m.ClientConns.Load(), m.ClientConnsTotal.Load(), m.BytesFromClients.Load(), m.BytesFromUpstreams.Load(), m.UpstreamConnectErrors.Load())
	return int64(n), err
}

// AdminHandler serves /healthz (the process is up), /readyz (ready reports
// no error) and /metrics (m).
func AdminHandler(m *Metrics, ready func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		m.WriteTo(w)
	})
	return mux
}
