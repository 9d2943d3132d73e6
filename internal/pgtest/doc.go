// Package pgtest runs throwaway PostgreSQL servers for tests.
//
// Start creates a cluster with initdb in a fresh temporary directory, starts
// postgres on a free port of 127.0.0.1 and returns once it accepts
// connections. The cluster can be stopped (Stop), crashed (Kill) and started
// again on the same port with its data (Restart); Close stops it and removes
// everything. A test package usually runs one cluster for all its tests from
// TestMain with Run, and each test takes a fresh database (CreateDatabase) or
// schema (CreateSchema) that is dropped when the test ends.
//
// The superuser is "postgres" and connects without a password over TCP and
// the Unix socket. Other roles authenticate with their password (MD5 or
// SCRAM, as the role's password is stored). The server is tuned for tests:
// fsync, synchronous_commit and full_page_writes are off, so Kill may lose
// the last commits.
//
// The server binaries are found with pg_config --bindir, else in the newest
// /usr/lib/postgresql/*/bin, else on PATH. When the tests run as root, initdb
// and postgres run as the postgres OS user, which owns the cluster directory.
package pgtest
