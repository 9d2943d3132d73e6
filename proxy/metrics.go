package proxy

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics counts what the server does. All fields are safe for concurrent
// use; the zero value is ready. It is a prometheus.Collector that reads the
// fields when scraped, so updating them costs no more than an atomic add.
type Metrics struct {
	ClientConns           atomic.Int64 // open client connections
	ClientConnsTotal      atomic.Int64 // client connections accepted
	BytesFromClients      atomic.Int64 // relayed client -> upstream
	BytesFromUpstreams    atomic.Int64 // relayed upstream -> client
	UpstreamConnectErrors atomic.Int64 // failed upstream connection attempts
}

// The series of Metrics.
var (
	clientConnsDesc = prometheus.NewDesc("pgmigrate_client_connections",
		"Open client connections.", nil, nil)
	clientConnsTotalDesc = prometheus.NewDesc("pgmigrate_client_connections_total",
		"Client connections accepted.", nil, nil)
	relayedBytesDesc = prometheus.NewDesc("pgmigrate_relayed_bytes_total",
		"Bytes relayed, by direction.", []string{"direction"}, nil)
	upstreamConnectErrorsDesc = prometheus.NewDesc("pgmigrate_upstream_connect_errors_total",
		"Failed upstream connection attempts.", nil, nil)
)

// Describe sends the descriptors of m's series.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- clientConnsDesc
	ch <- clientConnsTotalDesc
	ch <- relayedBytesDesc
	ch <- upstreamConnectErrorsDesc
}

// Collect sends m's series with their current values.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(clientConnsDesc, prometheus.GaugeValue, float64(m.ClientConns.Load()))
	ch <- prometheus.MustNewConstMetric(clientConnsTotalDesc, prometheus.CounterValue, float64(m.ClientConnsTotal.Load()))
	ch <- prometheus.MustNewConstMetric(relayedBytesDesc, prometheus.CounterValue, float64(m.BytesFromClients.Load()), "client_to_upstream")
	ch <- prometheus.MustNewConstMetric(relayedBytesDesc, prometheus.CounterValue, float64(m.BytesFromUpstreams.Load()), "upstream_to_client")
	ch <- prometheus.MustNewConstMetric(upstreamConnectErrorsDesc, prometheus.CounterValue, float64(m.UpstreamConnectErrors.Load()))
}

// AdminHandler serves /healthz (the process is up), /readyz (ready reports
// no error) and /metrics (what metrics gathers, in the format the scraper
// asks for).
func AdminHandler(metrics prometheus.Gatherer, ready func(context.Context) error) http.Handler {
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
	mux.Handle("GET /metrics", promhttp.HandlerFor(metrics, promhttp.HandlerOpts{}))
	return mux
}
