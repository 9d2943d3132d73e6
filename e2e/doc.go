// Package e2e holds black-box tests of pgmigrate-proxy: the real binary,
// built once per run, in front of a real PostgreSQL cluster started by
// internal/pgtest, driven by real clients: psql, pg_dump, pgx, lib/pq,
// pgjdbc, node-postgres, knex, Prisma, psycopg 3, psycopg2, SQLAlchemy and
// Django (each skips, saying what to install, where its runtime is
// missing).
//
// Two tests are opt-in: the crash soak (PGMIGRATE_SOAK, soak_test.go), and
// the benchmarks, which run with -bench.
//
// Each test starts its own proxy process with startProxy and, usually, its
// own database of tenant schemas with newTenants, so tests do not share
// state beyond the cluster and its roles.
package e2e
