package proxy

import (
	"errors"

	"github.com/jackc/pgx/v5/pgproto3"
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

// Errors the proxy reports in its own words.
var (
	errShutdown     = &fatal{code: "57P01", msg: "terminating connection due to administrator command"}
	errTooMany      = &fatal{code: "53300", msg: "sorry, too many clients already"}
	errNoUser       = &fatal{code: "28000", msg: "no PostgreSQL user name specified in startup packet"}
	errUpstreamLost = &fatal{code: "08006", msg: "lost the connection to the upstream server"}
)

// errorResponse is the one place an error becomes an ErrorResponse. Errors
// without a SQLSTATE of their own are internal errors (XX000).
func errorResponse(severity string, err error) *pgproto3.ErrorResponse {
	er := &pgproto3.ErrorResponse{Severity: severity, SeverityUnlocalized: severity, Code: "XX000", Message: err.Error()}
	var s sqlStater
	if errors.As(err, &s) {
		er.Code = s.SQLState()
	}
	var f *fatal
	if errors.As(err, &f) {
		er.Detail = f.detail
	}
	return er
}
