//go:build !cgo

package intercept

import (
	"errors"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// parseSQL fails without cgo, which libpg_query needs: such a build (a
// cross-compiled one, which CI vets for other platforms) can relay, but
// not run migrate commands.
func parseSQL(string) (*pg_query.ParseResult, error) {
	return nil, errors.New("parsing migrate commands needs a build with cgo (libpg_query)")
}
