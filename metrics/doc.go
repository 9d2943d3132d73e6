// Package metrics is the Prometheus side of pgmigrate-proxy's migrations:
// how many migrate commands ran and how long they took, and, through an
// engine.Recorder per engine, what the migration engines report (waits for
// a tenant's lock, retries, recovered and unfinished intents).
//
//	reg := prometheus.NewRegistry()
//	m := metrics.New(reg)
//	handler.Observe = m.Command                   // intercept.Handler
//	opts.Recorder = m.Recorder("main", "crm")     // engine.Options
//
// Labels take only bounded values: procedures, statuses, SQLSTATEs,
// recovery outcomes, and the upstreams and databases of the
// configuration. An org is never a label.
package metrics
