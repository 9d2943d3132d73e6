package registry

import (
	"maps"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The series of a Registry, read when scraped.
var (
	tenantsDesc = prometheus.NewDesc("pgmigrate_registry_tenants",
		"Tenants the registry holds from each upstream's catalog.", []string{"upstream"}, nil)
	lookupsDesc = prometheus.NewDesc("pgmigrate_registry_lookups_total",
		"Lookups of orgs in the registry (orgs the config file does not list).", nil, nil)
	unknownDesc = prometheus.NewDesc("pgmigrate_registry_unknown_total",
		"Lookups answered unknown (3D000).", nil, nil)
	queriesDesc = prometheus.NewDesc("pgmigrate_registry_catalog_queries_total",
		"Queries of a catalog for an org the registry did not hold.", nil, nil)
	ageDesc = prometheus.NewDesc("pgmigrate_registry_refresh_age_seconds",
		"Seconds since each upstream's catalog was last read whole.", []string{"upstream"}, nil)
)

// Describe implements prometheus.Collector.
func (r *Registry) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{tenantsDesc, lookupsDesc, unknownDesc, queriesDesc, ageDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (r *Registry) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{}
	r.mu.RLock()
	for _, t := range r.byOrg {
		counts[t.Upstream]++
	}
	refreshed := maps.Clone(r.refreshed)
	r.mu.RUnlock()
	for _, up := range r.cfg.Upstreams {
		ch <- prometheus.MustNewConstMetric(tenantsDesc, prometheus.GaugeValue, float64(counts[up.Name]), up.Name)
		if at, ok := refreshed[up.Name]; ok {
			ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, time.Since(at).Seconds(), up.Name)
		}
	}
	ch <- prometheus.MustNewConstMetric(lookupsDesc, prometheus.CounterValue, float64(r.lookups.Load()))
	ch <- prometheus.MustNewConstMetric(unknownDesc, prometheus.CounterValue, float64(r.unknown.Load()))
	ch <- prometheus.MustNewConstMetric(queriesDesc, prometheus.CounterValue, float64(r.catalogQueries.Load()))
}
