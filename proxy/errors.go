package proxy

import (
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgmigrate/pgmigrate-proxy/intercept"
)

// sqlStater is an error that knows its SQLSTATE. Errors from package policy,
// this package and *pgconn.PgError all are.
type sqlStater interface {
	error
	SQLState() string
}

// fatal is an error that ends a session, with the SQLSTATE and text the
// client is told.
type fatal struct {
	code, msg, detail string
}

func (e *fatal) Error() string    { return e.msg }
func (e *fatal) SQLState() string { return e.code }
func (e *fatal) Detail() string   { return e.detail }

// Errors the proxy reports in its own words.
var (
	errShutdown     = &fatal{code: "57P01", msg: "terminating connection due to administrator command"}
	errTooMany      = &fatal{code: "53300", msg: "sorry, too many clients already"}
	errNoUser       = &fatal{code: "28000", msg: "no PostgreSQL user name specified in startup packet"}
	errUpstreamLost = &fatal{code: "08006", msg: "lost the connection to the upstream server"}
)

// errorResponse is the FATAL that ends a session because of err.
func errorResponse(err error) *pgproto3.ErrorResponse { return intercept.ErrorResponse("FATAL", err) }
