//go:build cgo

package intercept

import pg_query "github.com/pganalyze/pg_query_go/v5"

// parseSQL is PostgreSQL's own parser (libpg_query, built with cgo).
func parseSQL(sql string) (*pg_query.ParseResult, error) { return pg_query.Parse(sql) }
