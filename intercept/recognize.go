package intercept

import "bytes"

// Kind is what the recognizer makes of the SQL text of a Query or Parse
// message: the kind of the most telling of its statements, in the order
// below (a text holding a migrate command is Migrate, whatever else it
// holds).
type Kind uint8

const (
	// Ordinary is every other text: passed on unchanged.
	Ordinary Kind = iota
	// DDL is a statement starting with CREATE, ALTER, DROP, COMMENT, GRANT,
	// REVOKE, SECURITY LABEL or IMPORT FOREIGN SCHEMA.
	DDL
	// RoleChange is SET ROLE, RESET ROLE, SET SESSION AUTHORIZATION or
	// RESET SESSION AUTHORIZATION, in any of their spellings.
	RoleChange
	// Migrate is a statement that may be a migrate command: CALL followed
	// by the schema migrate (unquoted in any case, or quoted exactly as
	// "migrate") and a dot, or by a name, a dot, migrate and a dot (a
	// database-qualified procedure). A name written as a Unicode-escaped
	// identifier (U&"...") counts as well, as it may spell migrate. So
	// does SELECT * FROM followed by such a name and then a function's
	// opening parenthesis (or a dot, for a name of more parts), the form
	// of JDBC's {call migrate.<proc>(...)}.
	Migrate
)

// Classify returns the kind of sql. It looks at the start of every
// statement of the text, as PostgreSQL's lexer splits it with
// standard_conforming_strings on and, when the text holds a backslash,
// also as with it off and, when a backslash follows a byte of 0x80 or
// more, as in each client encoding in which a multibyte character may end
// in a backslash byte (SJIS, BIG5, GBK, UHC, JOHAB, GB18030): a text is
// whatever any reading makes it, so a statement
// cannot hide from the proxy behind the session's settings, nor behind a
// SET of them sent in the same pipeline or made by a function.
//
// Classify does not parse and does not allocate. It may call a text
// Migrate that is not a migrate command, which Parse then refuses, but it
// never misses a text that PostgreSQL would parse as a CALL of a procedure
// in schema migrate, or as SELECT * FROM a function in schema migrate.
func Classify(sql []byte) Kind {
	k, several := classify(sql, reading{})
	// Readings differ only in where strings end, which matters only
	// where a semicolon may start another statement.
	if k == Migrate || !several || bytes.IndexByte(sql, '\\') < 0 {
		return k
	}
	other, _ := classify(sql, reading{backslash: true})
	k = max(k, other)
	if !backslashInCharacter(sql) {
		return k
	}
	for _, mbLen := range backslashEncodings {
		for _, backslash := range [...]bool{false, true} {
			if k == Migrate {
				return k
			}
			other, _ := classify(sql, reading{backslash: backslash, mbLen: mbLen})
			k = max(k, other)
		}
	}
	return k
}

// reading is how the lexer reads a text: whether a backslash escapes the
// next character in every quoted string (standard_conforming_strings off)
// or only in E'...' strings, and, for a client encoding in which the
// bytes of a multibyte character may include a backslash, the length of
// the character that a byte of 0x80 or more starts.
type reading struct {
	backslash bool
	mbLen     func(s []byte) int
}

// backslashEncodings are the character lengths of the client encodings
// whose multibyte characters may hold the byte of a backslash, as
// PostgreSQL reads them (pg_wchar_table): SJIS; BIG5, GBK and UHC; JOHAB;
// GB18030. In every other encoding, every byte of a multibyte character is
// 0x80 or more.
var backslashEncodings = [...]func(s []byte) int{
	func(s []byte) int { // SJIS: half-width katakana are one byte
		if 0xa1 <= s[0] && s[0] <= 0xdf {
			return 1
		}
		return 2
	},
	func([]byte) int { return 2 },
	func(s []byte) int { // JOHAB, read as EUC
		switch s[0] {
		case 0x8e:
			return 2
		case 0x8f:
			return 3
		}
		return 2
	},
	func(s []byte) int { // GB18030
		if len(s) > 1 && '0' <= s[1] && s[1] <= '9' {
			return 4
		}
		return 2
	},
}

// backslashInCharacter reports whether a backslash byte of sql could be
// part of a multibyte character in one of backslashEncodings: whether it
// follows a byte of 0x80 or more, closely enough. Only then can those
// encodings read the text otherwise than byte by byte.
func backslashInCharacter(sql []byte) bool {
	for i := bytes.IndexByte(sql, '\\'); i >= 0; {
		if i > 0 && sql[i-1] >= 0x80 || i > 1 && sql[i-2] >= 0x80 {
			return true
		}
		j := bytes.IndexByte(sql[i+1:], '\\')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// classify returns the highest kind among the statements of sql as r
// reads it, and whether a semicolon follows the start of its first
// statement (else no reading can find another).
func classify(sql []byte, r reading) (k Kind, several bool) {
	for i := 0; i < len(sql); {
		i = skipSpace(sql, i)
		if i == len(sql) {
			break
		}
		k = max(k, statementKind(sql, i))
		if k == Migrate || bytes.IndexByte(sql[i:], ';') < 0 {
			return k, several
		}
		several = true
		i = statementEnd(sql, i, r)
	}
	return k, several
}

// statementKind returns the kind of the statement at sql[i]. It looks at
// the first byte first, so that an ordinary statement costs one switch.
func statementKind(sql []byte, i int) Kind {
	switch sql[i] | 0x20 {
	case 'c':
		if callsMigrate(sql, i) {
			return Migrate
		}
		return ddlIf(sql, i, "create", "comment")
	case 's':
		if selectsMigrate(sql, i) {
			return Migrate
		}
		if j, ok := word(sql, i, "set"); ok {
			return setKind(sql, skipSpace(sql, j))
		}
		return ddlIf(sql, i, "security", "")
	case 'r':
		if j, ok := word(sql, i, "reset"); ok {
			return resetKind(sql, skipSpace(sql, j))
		}
		return ddlIf(sql, i, "revoke", "")
	case 'a':
		return ddlIf(sql, i, "alter", "")
	case 'd':
		return ddlIf(sql, i, "drop", "")
	case 'g':
		return ddlIf(sql, i, "grant", "")
	case 'i':
		return ddlIf(sql, i, "import", "")
	}
	return Ordinary
}

// ddlIf returns DDL if the statement at sql[i] starts with the keyword w1
// or w2 (unless empty), else Ordinary.
func ddlIf(sql []byte, i int, w1, w2 string) Kind {
	if _, ok := word(sql, i, w1); ok {
		return DDL
	}
	if _, ok := word(sql, i, w2); ok && w2 != "" {
		return DDL
	}
	return Ordinary
}

// setKind returns the kind of SET whose arguments start at sql[j]: a role
// change for SET [SESSION | LOCAL] ROLE or SESSION AUTHORIZATION.
func setKind(sql []byte, j int) Kind {
	for _, scope := range [...]string{"session", "local"} {
		if k, ok := word(sql, j, scope); ok && !sessionAuthorization(sql, j) {
			j = skipSpace(sql, k)
			break
		}
	}
	return resetKind(sql, j)
}

// resetKind returns the kind of RESET (or SET, past its scope) whose
// parameter starts at sql[j]: a role change for ROLE or SESSION
// AUTHORIZATION.
func resetKind(sql []byte, j int) Kind {
	if sessionAuthorization(sql, j) || roleSetting(sql, j) {
		return RoleChange
	}
	return Ordinary
}

// sessionAuthorization reports whether SESSION AUTHORIZATION starts at
// sql[i].
func sessionAuthorization(sql []byte, i int) bool {
	j, ok := word(sql, i, "session")
	if !ok {
		return false
	}
	_, ok = word(sql, skipSpace(sql, j), "authorization")
	return ok
}

// roleSetting reports whether the parameter named at sql[i] is role or
// session_authorization (unquoted or quoted, in any case, as PostgreSQL
// matches parameter names), or a Unicode-escaped name that may spell one.
func roleSetting(sql []byte, i int) bool {
	if unicodeIdent(sql[i:]) {
		return true
	}
	for _, name := range [...]string{"role", "session_authorization"} {
		if _, ok := word(sql, i, name); ok {
			return true
		}
		if q := len(name) + 2; len(sql)-i >= q && sql[i] == '"' && sql[i+q-1] == '"' && hasPrefixFold(sql[i+1:], name) {
			return true
		}
	}
	return false
}

// word reports whether sql[i:] starts with the lower-case ASCII keyword w,
// in any case and not followed by more of an identifier, and returns the
// index just past it.
func word(sql []byte, i int, w string) (int, bool) {
	rest := sql[i:]
	if !hasPrefixFold(rest, w) || len(rest) > len(w) && isIdentCont(rest[len(w)]) {
		return i, false
	}
	return i + len(w), true
}

// unicodeIdent reports whether b starts with a Unicode-escaped identifier.
func unicodeIdent(b []byte) bool {
	return len(b) >= 3 && b[0]|0x20 == 'u' && b[1] == '&' && b[2] == '"'
}

// callsMigrate reports whether the statement at sql[i] starts with CALL
// and a name qualified by migrate (migrateQualified).
func callsMigrate(sql []byte, i int) bool {
	if !hasPrefixFold(sql[i:], "call") {
		return false
	}
	i += 4
	j := skipSpace(sql, i)
	if j == i && (j == len(sql) || sql[j] != '"') {
		return false // no separator after CALL: a longer word, or the end
	}
	_, ok := migrateQualified(sql, j)
	return ok
}

// selectsMigrate reports whether the statement at sql[i] starts with
// SELECT * FROM and a name qualified by migrate (migrateQualified) that
// names a function: a name followed by an opening parenthesis, or by a dot
// (a name of more parts, which Parse refuses), or a Unicode-escaped one.
// SELECT * FROM migrate.t, a table, is not one.
func selectsMigrate(sql []byte, i int) bool {
	j, ok := word(sql, i, "select")
	if !ok {
		return false
	}
	j = skipSpace(sql, j)
	if j == len(sql) || sql[j] != '*' {
		return false
	}
	j, ok = word(sql, skipSpace(sql, j+1), "from")
	if !ok {
		return false
	}
	j, ok = migrateQualified(sql, skipSpace(sql, j))
	switch {
	case !ok:
		return false
	case unicodeIdent(sql[j:]):
		return true
	}
	k := nameEnd(sql, j)
	return k > j && k < len(sql) && (sql[k] == '(' || sql[k] == '.')
}

// migrateQualified reports whether the name at sql[j] is qualified by the
// schema migrate: migrate and a dot, or a name, a dot, migrate and a dot
// (a database-qualified name), where a Unicode-escaped identifier
// (U&"...") may stand for migrate. It returns the index of what follows
// the qualification: the unqualified name, or the Unicode-escaped
// identifier.
func migrateQualified(sql []byte, j int) (int, bool) {
	if unicodeIdent(sql[j:]) {
		return j, true
	}
	if k, ok := migrateName(sql, j); ok {
		return dotAfter(sql, k)
	}
	// A database name first: crm.migrate.x.
	k := nameEnd(sql, j)
	if k == j {
		return j, false
	}
	k, ok := dotAfter(sql, k)
	if !ok {
		return j, false
	}
	if unicodeIdent(sql[k:]) {
		return k, true
	}
	if k, ok = migrateName(sql, k); ok {
		return dotAfter(sql, k)
	}
	return j, false
}

// dotAfter reports whether sql[k] is a dot and returns the index of what
// follows it and the spaces after it.
func dotAfter(sql []byte, k int) (int, bool) {
	if k == len(sql) || sql[k] != '.' {
		return k, false
	}
	return skipSpace(sql, k+1), true
}

// migrateName reports whether sql[j:] starts with the name migrate
// (unquoted in any case, or quoted exactly) and returns the index of what
// follows it and the spaces after it.
func migrateName(sql []byte, j int) (int, bool) {
	rest := sql[j:]
	switch {
	case hasPrefixFold(rest, "migrate") && (len(rest) == 7 || !isIdentCont(rest[7])):
		j += len("migrate")
	case len(rest) >= 9 && string(rest[:9]) == `"migrate"`:
		j += len(`"migrate"`)
	default:
		return j, false
	}
	return skipSpace(sql, j), true
}

// nameEnd returns the index past the identifier at sql[j] (an unquoted word
// or a quoted name) and the spaces after it, or j if none starts there.
func nameEnd(sql []byte, j int) int {
	switch {
	case j == len(sql):
		return j
	case sql[j] == '"':
		return skipSpace(sql, quotedEnd(sql, j, reading{}))
	case isIdentStart(sql[j]):
		k := j + 1
		for k < len(sql) && isIdentCont(sql[k]) {
			k++
		}
		return skipSpace(sql, k)
	}
	return j
}

// statementEnd returns the index just past the semicolon that ends the
// statement at sql[i], or len(sql) if it is the last one.
func statementEnd(sql []byte, i int, r reading) int {
	for i < len(sql) && sql[i] != ';' {
		i = tokenEnd(sql, i, r)
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
			i = tokenEnd(sql, i, reading{})
		default:
			return i
		}
	}
	return i
}

// tokenEnd returns the index just past the token that starts at sql[i], as
// PostgreSQL's lexer splits the text read as r says: a comment, a quoted
// string or identifier, a dollar-quoted string, a parameter, a word, a
// number, or else a single byte. A token left open runs to the end.
func tokenEnd(sql []byte, i int, r reading) int {
	c := sql[i]
	switch {
	case c == '-' && isComment(sql, i):
		if n := bytes.IndexAny(sql[i:], "\n\r"); n >= 0 {
			return i + n
		}
		return len(sql)
	case c == '/' && isComment(sql, i):
		return blockCommentEnd(sql, i)
	case c == '\'':
		return quotedEnd(sql, i, r)
	case c == '"':
		return quotedEnd(sql, i, reading{})
	case c == '$':
		return dollarEnd(sql, i, r)
	case isIdentStart(c):
		j := r.charEnd(sql, i)
		for j < len(sql) && isIdentCont(sql[j]) {
			j = r.charEnd(sql, j)
		}
		if j == i+1 && c|0x20 == 'e' && j < len(sql) && sql[j] == '\'' {
			return quotedEnd(sql, j, reading{backslash: true, mbLen: r.mbLen}) // E'...' allows backslash escapes
		}
		return j
	case isDigit(c):
		// Numbers, with the junk PostgreSQL rejects after them, but not a
		// following $, which may start a dollar-quoted string.
		j := i + 1
		for j < len(sql) && (isIdentCont(sql[j]) || sql[j] == '.') && sql[j] != '$' {
			j = r.charEnd(sql, j)
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
// sql[i] and read as r says, where a doubled quote stands for one and, with
// backslash, a backslash escapes the next character. A single-quoted string
// continues after whitespace holding a newline and another quote.
func quotedEnd(sql []byte, i int, r reading) int {
	q := sql[i]
	for j := i + 1; j < len(sql); j++ {
		switch c := sql[j]; {
		case c >= 0x80:
			j = r.charEnd(sql, j) - 1
		case c == '\\' && r.backslash:
			if j+1 < len(sql) {
				j = r.charEnd(sql, j+1) - 1
			}
		case c == q:
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

// charEnd returns the index just past the character that starts at
// sql[j], as r reads it.
func (r reading) charEnd(sql []byte, j int) int {
	if sql[j] < 0x80 || r.mbLen == nil {
		return j + 1
	}
	return min(j+r.mbLen(sql[j:]), len(sql))
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
func dollarEnd(sql []byte, i int, r reading) int {
	j := i + 1
	for j < len(sql) && isDigit(sql[j]) {
		j++
	}
	if j > i+1 {
		return j // $n, which a word may follow at once, as in $1e'...'
	}
	if j < len(sql) && isIdentStart(sql[j]) {
		j = r.charEnd(sql, j)
		for j < len(sql) && isIdentCont(sql[j]) && sql[j] != '$' {
			j = r.charEnd(sql, j)
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

// hasPrefixFold reports whether b starts with w, a lower-case ASCII word,
// in any case.
func hasPrefixFold(b []byte, w string) bool {
	if len(b) < len(w) {
		return false
	}
	for i := range len(w) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != w[i] {
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
