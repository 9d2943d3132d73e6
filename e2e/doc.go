// Package e2e holds black-box tests of pgmigrate-proxy: the real binary,
// built once per run, in front of a real PostgreSQL cluster started by
// internal/pgtest, driven by real clients (psql, pgx, lib/pq).
//
// Each test starts its own proxy process with startProxy and, usually, its
// own database of tenant schemas with newTenants, so tests do not share
// state beyond the cluster and its roles.
package e2e
