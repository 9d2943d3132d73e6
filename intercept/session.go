package intercept

import "github.com/pgmigrate/pgmigrate-proxy/policy"

// Session is what the handler knows of the client session that sent a
// command.
type Session struct {
	User string
	// Application is the application_name the client gave at startup.
	Application string
	// Route is where the session goes; Route.Org is empty in an admin
	// session.
	Route policy.Route
	// InTransaction is true inside a transaction block, as the last
	// ReadyForQuery said.
	InTransaction bool
	// Notify, when set, sends a message to the client at once, ahead of
	// the answer (progress notices of a long command).
	Notify func(msg []byte)
}
