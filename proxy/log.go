package proxy

// Attribute keys of the server's log lines.
const (
	keyRemote   = "remote"
	keyOrg      = "org"
	keyUser     = "user"
	keyUpstream = "upstream"
	keyDuration = "duration_ms"
	keyError    = "error"
	keySQLState = "sqlstate"
)
