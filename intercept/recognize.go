package intercept

import "bytes"

// Maybe reports whether the SQL text of a Query or Parse message may hold a
// migrate command: a statement that starts, after whitespace and comments,
// with CALL followed by the schema migrate (unquoted in any case, or quoted
// exactly as "migrate") and a dot. A schema written as a Unicode-escaped
// identifier (U&"...") counts as well, as it may spell migrate.
//
// Maybe looks at the start of every statement of the text, so a migrate
// command after another statement is seen too; Parse then rejects the
// mixture. It does not parse and does not allocate. It may say yes to text
// that is not a migrate command, which Parse then tells apart, but it never
// says no to a text that PostgreSQL would parse as a CALL of a procedure in
// schema migrate.
func Maybe(sql []byte) bool {
	for i := 0; i < len(sql); {
		i = skipSpace(sql, i)
		if callsMigrate(sql, i) {
			return true
		}
		if bytes.IndexByte(sql[i:], ';') < 0 {
			return false
		}
		i = statementEnd(sql, i)
	}
	return false
}

// callsMigrate reports whether the statement at sql[i] starts with
// CALL migrate followed by a dot.
func callsMigrate(sql []byte, i int) bool {
	if !hasPrefixFold(sql[i:], "call") {
		return false
	}
	i += 4
	j := skipSpace(sql, i)
	rest := sql[j:]
	switch {
	case j == i && (len(rest) == 0 || rest[0] != '"'):
		return false // no separator after CALL: a longer word, or the end
	case hasPrefixFold(rest, "migrate") && (len(rest) == 7 || !isIdentCont(rest[7])):
		j += len("migrate")
	case len(rest) >= 9 && string(rest[:9]) == `"migrate"`:
		j += len(`"migrate"`)
	case len(rest) >= 3 && rest[0]|0x20 == 'u' && rest[1] == '&' && rest[2] == '"':
		return true
	default:
		return false
	}
	j = skipSpace(sql, j)
	return j < len(sql) && sql[j] == '.'
}

// statementEnd returns the index just past the semicolon that ends the
// statement at sql[i], or len(sql) if it is the last one.
func statementEnd(sql []byte, i int) int {
	for i < len(sql) && sql[i] != ';' {
		i = tokenEnd(sql, i)
	}
	return min(i+1, len(sql))
}

// skipSpace returns the index of the first byte at or after sql[i] that is
// neither whitespace nor part of a comment.
func skipSpace(sql []byte, i int) int {
	for i < len(sql) {
		switch {
		case isSpace(sql[i]):
			i++
		case isComment(sql, i):
			i = tokenEnd(sql, i)
		default:
			return i
		}
	}
	return i
}

// tokenEnd returns the index just past the token that starts at sql[i], as
// PostgreSQL's lexer splits the text with standard_conforming_strings on:
// a comment, a quoted string or identifier, a dollar-quoted string, a
// parameter, a word, a number, or else a single byte. A token left open
// runs to the end.
func tokenEnd(sql []byte, i int) int {
	c := sql[i]
	switch {
	case c == '-' && isComment(sql, i):
		if n := bytes.IndexAny(sql[i:], "\n\r"); n >= 0 {
			return i + n
		}
		return len(sql)
	case c == '/' && isComment(sql, i):
		return blockCommentEnd(sql, i)
	case c == '\'' || c == '"':
		return quotedEnd(sql, i, false)
	case c == '$':
		return dollarEnd(sql, i)
	case isIdentStart(c):
		j := i + 1
		for j < len(sql) && isIdentCont(sql[j]) {
			j++
		}
		if j == i+1 && c|0x20 == 'e' && j < len(sql) && sql[j] == '\'' {
			return quotedEnd(sql, j, true) // E'...' allows backslash escapes
		}
		return j
	case isDigit(c):
		// Numbers, with the junk PostgreSQL rejects after them, but not a
		// following $, which may start a dollar-quoted string.
		j := i + 1
		for j < len(sql) && (isIdentCont(sql[j]) || sql[j] == '.') && sql[j] != '$' {
			j++
		}
		return j
	}
	return i + 1
}

// isComment reports whether a comment starts at sql[i].
func isComment(sql []byte, i int) bool {
	if i+1 >= len(sql) {
		return false
	}
	return sql[i] == '-' && sql[i+1] == '-' || sql[i] == '/' && sql[i+1] == '*'
}

// blockCommentEnd returns the index just past the /* comment at sql[i],
// which may nest.
func blockCommentEnd(sql []byte, i int) int {
	depth := 0
	for i+1 < len(sql) {
		switch {
		case sql[i] == '/' && sql[i+1] == '*':
			depth++
			i += 2
		case sql[i] == '*' && sql[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return len(sql)
}

// quotedEnd returns the index just past the string or identifier quoted by
// sql[i], where a doubled quote stands for one and, with backslash, a
// backslash escapes the next byte. A single-quoted string continues after
// whitespace holding a newline and another quote.
func quotedEnd(sql []byte, i int, backslash bool) int {
	q := sql[i]
	for j := i + 1; j < len(sql); j++ {
		switch sql[j] {
		case '\\':
			if backslash {
				j++
			}
		case q:
			if j+1 < len(sql) && sql[j+1] == q {
				j++
				continue
			}
			if q != '\'' {
				return j + 1
			}
			k := continuation(sql, j+1)
			if k == 0 {
				return j + 1
			}
			j = k
		}
	}
	return len(sql)
}

// continuation returns the index of the quote that continues a string
// closed just before sql[i]: whitespace with a newline, then a quote. It
// returns 0 if there is none.
func continuation(sql []byte, i int) int {
	newline := false
	for ; i < len(sql); i++ {
		switch c := sql[i]; {
		case c == '\n' || c == '\r':
			newline = true
		case c == '\'' && newline:
			return i
		case !isSpace(c):
			return 0
		}
	}
	return 0
}

// dollarEnd returns the index just past the parameter $n or the
// dollar-quoted string at sql[i], or i+1 if the $ starts neither.
func dollarEnd(sql []byte, i int) int {
	j := i + 1
	for j < len(sql) && isDigit(sql[j]) {
		j++
	}
	if j > i+1 {
		return j // $n, which a word may follow at once, as in $1e'...'
	}
	if j < len(sql) && isIdentStart(sql[j]) {
		j++
		for j < len(sql) && isIdentCont(sql[j]) && sql[j] != '$' {
			j++
		}
	}
	if j >= len(sql) || sql[j] != '$' {
		return i + 1
	}
	delim := sql[i : j+1]
	if n := bytes.Index(sql[j+1:], delim); n >= 0 {
		return j + 1 + n + len(delim)
	}
	return len(sql)
}

// hasPrefixFold reports whether b starts with the lower-case ASCII word w
// in any case.
func hasPrefixFold(b []byte, w string) bool {
	if len(b) < len(w) {
		return false
	}
	for i := range len(w) {
		if b[i]|0x20 != w[i] {
			return false
		}
	}
	return true
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isIdentStart reports whether c may start an unquoted identifier; bytes of
// multi-byte characters may.
func isIdentStart(c byte) bool {
	return 'a' <= c|0x20 && c|0x20 <= 'z' || c == '_' || c >= 0x80
}

func isIdentCont(c byte) bool {
	return isIdentStart(c) || isDigit(c) || c == '$'
}
