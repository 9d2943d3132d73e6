package intercept

import (
	"bytes"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// SQLSTATEs of the errors this package reports.
const (
	codeFeatureNotSupported        = "0A000"
	codeCharacterNotInRepertoire   = "22021"
	codeProgramLimitExceeded       = "54000"
	codeNullValueNotAllowed        = "22004"
	codeInvalidTextRepresentation  = "22P02"
	codeSyntaxError                = "42601"
	codeInsufficientPrivilege      = "42501"
	codeConfigurationLimitExceeded = "53400"
	codeQueryCanceled              = "57014"
	codeUndefinedFunction          = "42883"
	codeUndefinedParameter         = "42P02"
)

// Error is an error about a migrate command in the terms of a PostgreSQL
// ErrorResponse: SQLSTATE, message, DETAIL and HINT.
type Error struct {
	Code       string // SQLSTATE
	Msg        string
	DetailText string // DETAIL, may be empty
	HintText   string // HINT, may be empty
}

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string    { return e.Msg }
func (e *Error) SQLState() string { return e.Code }
func (e *Error) Detail() string   { return e.DetailText }
func (e *Error) Hint() string     { return e.HintText }

// MaxCommandText is the largest migrate command text, in bytes, that Parse
// reads: a longer one is refused (54000) without being parsed.
const MaxCommandText = 1 << 20

// Command is a parsed CALL migrate.<proc>(...), before its parameters are
// bound.
type Command struct {
	Proc        string // the procedure, as in "add_field"
	Args        []Arg  // in written order
	Traceparent string // the W3C traceparent of a sqlcommenter comment, or ""
}

// ArgKind is how an argument is written.
type ArgKind int

const (
	Literal ArgKind = iota // a string, number or boolean constant
	Null                   // NULL
	Param                  // a $n parameter
)

// Arg is one argument of a Command, optionally cast.
type Arg struct {
	Name  string  // the name of a named argument (name => value), "" for a positional one
	Kind  ArgKind // Literal, Null or Param
	Value string  // a Literal's text; booleans are "true" or "false"
	Param int     // n of a Param $n
	Type  string  // the type of a cast as PostgreSQL names it (jsonb, json, text, varchar, bool, int4), "" if none
}

// castTypes are the types an argument may be cast to.
var castTypes = map[string]bool{"jsonb": true, "json": true, "text": true, "varchar": true, "bool": true, "int4": true}

// Parse parses SQL that Classify calls Migrate. The text must be a
// single CALL of a known migrate procedure whose arguments are literals,
// NULL or $n parameters (n no greater than the procedure's number of
// arguments), optionally cast, and fit the procedure's signature; otherwise
// Parse returns an *Error. A text that Classify took for a command but
// that holds none (a Unicode-escaped name, or one read differently with
// standard_conforming_strings off) is refused too: the proxy answers every
// text it takes, so that none can slip past it to PostgreSQL.
func Parse(sql string) (*Command, error) {
	if len(sql) > MaxCommandText {
		return nil, errorf(codeProgramLimitExceeded, "migrate command text of %d bytes exceeds the limit of %d bytes", len(sql), MaxCommandText)
	}
	if !utf8.ValidString(sql) {
		return nil, &Error{Code: codeCharacterNotInRepertoire, Msg: "migrate command text is not valid UTF-8",
			HintText: "Send migrate commands with client_encoding UTF8."}
	}
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return nil, &Error{Code: codeSyntaxError, Msg: err.Error()}
	}
	var call *pg_query.FuncCall
	for _, raw := range tree.Stmts {
		fc, err := migrateCall(raw.Stmt)
		if err != nil {
			return nil, err
		}
		if fc != nil {
			if len(tree.Stmts) > 1 {
				return nil, &Error{Code: codeFeatureNotSupported,
					Msg:      "a migrate command must be alone in its query",
					HintText: "Send the other statements in queries of their own."}
			}
			call = fc
		}
	}
	if call == nil {
		return nil, errNotCommand
	}
	c := &Command{Proc: call.Funcname[1].GetString_().GetSval(), Traceparent: traceparent([]byte(sql))}
	proc, err := lookup(c.Proc)
	if err != nil {
		return nil, err
	}
	if call.AggStar || call.AggDistinct || call.FuncVariadic || len(call.AggOrder) > 0 {
		return nil, errorf(codeSyntaxError, "migrate.%s takes a plain list of arguments", c.Proc)
	}
	maxParam := len(proc.args) + len(proc.namedOnly())
	for i, n := range call.Args {
		a, err := argument(n, fmt.Sprintf("argument %d of migrate.%s", i+1, c.Proc), maxParam)
		if err != nil {
			return nil, err
		}
		c.Args = append(c.Args, a)
	}
	if _, err := proc.resolve(c); err != nil {
		return nil, err
	}
	return c, nil
}

// errNotCommand refuses a text that Classify took for a migrate command but
// that PostgreSQL's parser reads otherwise.
var errNotCommand = &Error{Code: codeFeatureNotSupported,
	Msg:        "statement looks like a migrate command but is not one",
	DetailText: "The proxy answers every text that may hold CALL migrate.* itself. A Unicode-escaped name (U&\"...\") after CALL, or backslashes in strings, which read differently with standard_conforming_strings off, make a text look like one.",
	HintText:   "Write the statement without them."}

// migrateCall returns the call of a statement CALL migrate.<proc>(...), or
// nil for any other statement. A database-qualified procedure,
// CALL db.migrate.<proc>(...), and CALL migrate.x.y(...) are refused.
func migrateCall(stmt *pg_query.Node) (*pg_query.FuncCall, error) {
	call := stmt.GetCallStmt().GetFunccall()
	if call == nil {
		return nil, nil
	}
	name := call.Funcname
	switch {
	case len(name) == 2 && name[0].GetString_().GetSval() == "migrate":
		return call, nil
	case len(name) == 3 && (name[0].GetString_().GetSval() == "migrate" || name[1].GetString_().GetSval() == "migrate"):
		return nil, &Error{Code: codeFeatureNotSupported,
			Msg:      "cross-database references are not implemented for migrate commands",
			HintText: "Call the procedure as migrate.<procedure>(...): the session's database is the one it acts on."}
	}
	return nil, nil
}

// argument converts an argument of the call; its errors start with where,
// which names the argument.
func argument(n *pg_query.Node, where string, maxParam int) (Arg, error) {
	var a Arg
	if named := n.GetNamedArgExpr(); named != nil {
		a.Name = named.Name
		n = named.Arg
	}
	if cast := n.GetTypeCast(); cast != nil {
		a.Type = castType(cast.TypeName)
		if !castTypes[a.Type] {
			return a, errorf(codeSyntaxError, "%s has a cast that is not allowed; cast only to jsonb, json, text, varchar, boolean or integer", where)
		}
		n = cast.Arg
	}
	if p := n.GetParamRef(); p != nil {
		a.Kind, a.Param = Param, int(p.Number)
		if a.Param < 1 || a.Param > maxParam {
			return a, errorf(codeUndefinedParameter, "%s refers to $%d; there is no such parameter", where, a.Param)
		}
		return a, nil
	}
	c := n.GetAConst()
	switch {
	case c == nil:
		return a, errorf(codeSyntaxError, "%s must be a literal or a $n parameter", where)
	case c.Isnull:
		a.Kind = Null
	case c.GetIval() != nil:
		a.Value = strconv.Itoa(int(c.GetIval().Ival))
	case c.GetFval() != nil:
		a.Value = c.GetFval().Fval
	case c.GetBoolval() != nil:
		a.Value = strconv.FormatBool(c.GetBoolval().Boolval)
	case c.GetSval() != nil:
		a.Value = c.GetSval().Sval
	default:
		return a, errorf(codeSyntaxError, "%s must be a string, number or boolean literal", where)
	}
	return a, nil
}

// castType returns the name of a plain type, with no pg_catalog
// qualification, or "" for anything more (an array, a type modifier, ...).
func castType(t *pg_query.TypeName) string {
	names := t.Names
	if len(names) == 2 && names[0].GetString_().GetSval() == "pg_catalog" {
		names = names[1:]
	}
	if len(names) != 1 || len(t.Typmods) > 0 || len(t.ArrayBounds) > 0 || t.Setof || t.PctType {
		return ""
	}
	return names[0].GetString_().GetSval()
}

// ParamCount is the highest n of the $n parameters the command uses.
func (c *Command) ParamCount() int {
	n := 0
	for _, a := range c.Args {
		if a.Kind == Param {
			n = max(n, a.Param)
		}
	}
	return n
}

// traceparent returns the traceparent of the first sqlcommenter comment in
// sql that has a valid one, as in /*action='x',traceparent='00-...-01'*/,
// or "".
func traceparent(sql []byte) string {
	for i := 0; i < len(sql); {
		end := tokenEnd(sql, i, reading{})
		if sql[i] == '/' && isComment(sql, i) {
			if body, closed := bytes.CutSuffix(sql[i+2:end], []byte("*/")); closed {
				if tp := commentTraceparent(string(body)); tp != "" {
					return tp
				}
			}
		}
		i = end
	}
	return ""
}

// commentTraceparent returns the traceparent of the key='value' pairs of a
// sqlcommenter comment, whose values are URL-encoded, or "".
func commentTraceparent(comment string) string {
	for pair := range strings.SplitSeq(comment, ",") {
		key, value, _ := strings.Cut(pair, "=")
		value = strings.TrimSpace(value)
		if strings.TrimSpace(key) != "traceparent" || len(value) < 2 || value[0] != '\'' || value[len(value)-1] != '\'' {
			continue
		}
		if tp, err := url.PathUnescape(value[1 : len(value)-1]); err == nil && validTraceparent(tp) {
			return tp
		}
	}
	return ""
}

// validTraceparent reports whether s is a W3C traceparent
// version-traceid-parentid-flags in lower-case hex, where the version is
// not ff and neither id is all zeros.
func validTraceparent(s string) bool {
	if len(s) != 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	version, trace, parent, flags := s[:2], s[3:35], s[36:52], s[53:]
	return isHex(version) && version != "ff" &&
		isHex(trace) && strings.Trim(trace, "0") != "" &&
		isHex(parent) && strings.Trim(parent, "0") != "" &&
		isHex(flags)
}

func isHex(s string) bool { return strings.Trim(s, "0123456789abcdef") == "" }
