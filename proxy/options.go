package proxy

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// orgOption is the run-time parameter a client may use to name its org.
const orgOption = "pgmigrate.org"

// clientSettings are the run-time parameters a client may set when its
// session starts, in the startup packet or in its options, by lower-case
// name: those of a client's connection defaults, nothing that changes who
// the session is. In a tenant session the proxy's search_path replaces the
// client's.
var clientSettings = map[string]bool{
	"application_name": true, "client_encoding": true, "datestyle": true, "intervalstyle": true,
	"timezone": true, "extra_float_digits": true, "search_path": true, "bytea_output": true,
	"client_min_messages": true, "standard_conforming_strings": true,
	"statement_timeout": true, "lock_timeout": true, "idle_in_transaction_session_timeout": true, "idle_session_timeout": true,
	"default_transaction_isolation": true, "default_transaction_read_only": true, "default_transaction_deferrable": true,
	"lc_messages": true, "lc_monetary": true, "lc_numeric": true, "lc_time": true,
	"work_mem": true, "jit": true, "geqo": true, "xmlbinary": true, "xmloption": true,
}

// setting is one run-time parameter the client sets at startup.
type setting struct{ name, value string }

// settingError refuses a session whose startup packet sets what the proxy
// does not let a client set.
func settingError(format string, args ...any) error {
	return &fatal{code: "42501", msg: fmt.Sprintf(format, args...),
		detail: "pgmigrate-proxy lets a client set only its connection defaults at startup: " + strings.Join(settingNames(), ", ") + "."}
}

// settingNames lists clientSettings, sorted.
func settingNames() []string { return slices.Sorted(maps.Keys(clientSettings)) }

// startupSettings reads what a client's startup parameters ask for: the
// run-time parameters to set, in the packet's and then the options' order,
// and the org named by a pgmigrate.org setting. Anything but an
// allow-listed parameter (role, session_authorization, replication above
// all) is refused, and so is any word of options other than a -c setting.
func startupSettings(params map[string]string) (settings []setting, org string, err error) {
	for name, value := range params {
		switch name {
		case "user", "database", "options":
			continue
		}
		if strings.HasPrefix(name, "_pq_.") {
			continue // answered by NegotiateProtocolVersion
		}
		if !clientSettings[strings.ToLower(name)] {
			return nil, "", settingError("parameter %q cannot be set at connection start through pgmigrate-proxy", name)
		}
		settings = append(settings, setting{name, value})
	}
	words := splitOptions(params["options"])
	for i := 0; i < len(words); i++ {
		var s string
		switch {
		case words[i] == "-c" && i+1 < len(words):
			i++
			s = words[i]
		case strings.HasPrefix(words[i], "--"):
			s = words[i][2:]
		case strings.HasPrefix(words[i], "-c"):
			s = words[i][2:]
		default:
			return nil, "", settingError("option %q cannot be used through pgmigrate-proxy", words[i])
		}
		name, value, ok := strings.Cut(s, "=")
		switch {
		case !ok:
			return nil, "", &fatal{code: "42601", msg: fmt.Sprintf("-c %s requires a value", s)}
		case strings.EqualFold(name, orgOption):
			org = value
		case !clientSettings[strings.ToLower(name)]:
			return nil, "", settingError("parameter %q cannot be set at connection start through pgmigrate-proxy", name)
		default:
			settings = append(settings, setting{name, value})
		}
	}
	return settings, org, nil
}

// splitOptions splits a startup "options" value into words the way
// PostgreSQL does: whitespace separates, a backslash escapes the next byte.
func splitOptions(s string) []string {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			w.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}
