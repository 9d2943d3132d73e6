package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgmigrate/pgmigrate-proxy/engine"
)

// durationBuckets are the bounds, in seconds, of the duration histograms:
// from a command that changes nothing to one that runs into the default
// engine.command_timeout (10m).
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600}

// Metrics are the migration series of a registry. Its methods are safe
// for concurrent use.
type Metrics struct {
	commands        *prometheus.CounterVec
	commandDuration *prometheus.HistogramVec
	lockWait        prometheus.Histogram
	retries         *prometheus.CounterVec
	recovered       *prometheus.CounterVec
	unfinished      *prometheus.GaugeVec
}

// New makes the migration series and registers them with reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgmigrate_migrate_commands_total",
			Help: "Migrate commands run, by procedure, status (applied, unchanged, planned, ok or error) and SQLSTATE (of an error).",
		}, []string{"procedure", "status", "sqlstate"}),
		commandDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pgmigrate_migrate_command_duration_seconds",
			Help:    "Duration of migrate commands, by procedure.",
			Buckets: durationBuckets,
		}, []string{"procedure"}),
		lockWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pgmigrate_migrate_lock_wait_seconds",
			Help:    "Time an attempt to apply a change waited for its tenant's lock.",
			Buckets: durationBuckets,
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgmigrate_migrate_retries_total",
			Help: "Attempts that failed with a transient error and were tried again, by SQLSTATE (connection for a lost connection).",
		}, []string{"sqlstate"}),
		recovered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgmigrate_migrate_intents_recovered_total",
			Help: "Unfinished intents closed by recovery, by outcome (completed or undone).",
		}, []string{"outcome"}),
		unfinished: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pgmigrate_migrate_intents_unfinished",
			Help: "Unfinished intents of an upstream database, as its engine's last sweep found them.",
		}, []string{"upstream", "database"}),
	}
	reg.MustRegister(m.commands, m.commandDuration, m.lockWait, m.retries, m.recovered, m.unfinished)
	return m
}

// Command counts a migrate command that ran and observes its duration:
// its procedure, its status (applied, unchanged, planned, ok or error) and
// the SQLSTATE of an error ("" otherwise). It is what
// intercept.Handler.Observe takes.
func (m *Metrics) Command(procedure, status, sqlstate string, d time.Duration) {
	m.commands.WithLabelValues(procedure, status, sqlstate).Inc()
	m.commandDuration.WithLabelValues(procedure).Observe(d.Seconds())
}

// Recorder returns the engine.Recorder of the engine of an upstream's
// database.
func (m *Metrics) Recorder(upstream, database string) engine.Recorder {
	return &recorder{m: m, upstream: upstream, database: database}
}

// recorder is the engine.Recorder of one engine.
type recorder struct {
	m                  *Metrics
	upstream, database string
}

func (r *recorder) LockWaited(d time.Duration) {
	r.m.lockWait.Observe(d.Seconds())
}

func (r *recorder) Retried(sqlstate string) {
	if sqlstate == "" {
		sqlstate = "connection"
	}
	r.m.retries.WithLabelValues(sqlstate).Inc()
}

func (r *recorder) Recovered(outcome string) {
	r.m.recovered.WithLabelValues(outcome).Inc()
}

// Unfinished sets the engine's gauge, which appears with the first sweep.
func (r *recorder) Unfinished(n int) {
	r.m.unfinished.WithLabelValues(r.upstream, r.database).Set(float64(n))
}
