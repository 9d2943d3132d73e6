package proxy

import (
	"strings"
)

// orgOption is the run-time parameter a client may use to name its org.
const orgOption = "pgmigrate.org"

// splitOptions splits a startup "options" value the way PostgreSQL does
// (whitespace separates, a backslash escapes the next byte), takes out any
// pgmigrate.org setting (-c pgmigrate.org=X, -cpgmigrate.org=X or
// --pgmigrate.org=X) and returns the remaining arguments and the org.
func splitOptions(s string) (args []string, org string) {
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
	for i := 0; i < len(words); i++ {
		setting, consumed := "", 0
		switch {
		case words[i] == "-c" && i+1 < len(words):
			setting, consumed = words[i+1], 2
		case strings.HasPrefix(words[i], "--"):
			setting, consumed = words[i][2:], 1
		case strings.HasPrefix(words[i], "-c"):
			setting, consumed = words[i][2:], 1
		}
		name, value, ok := strings.Cut(setting, "=")
		if consumed > 0 && ok && strings.EqualFold(name, orgOption) {
			org = value
			i += consumed - 1
			continue
		}
		args = append(args, words[i])
	}
	return args, org
}

// joinOptions is the inverse of the splitting in splitOptions.
func joinOptions(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		for j := 0; j < len(a); j++ {
			switch a[j] {
			case '\\', ' ', '\t', '\n', '\r', '\f', '\v':
				b.WriteByte('\\')
			}
			b.WriteByte(a[j])
		}
	}
	return b.String()
}
