package intercept

import (
	"bytes"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
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

// Command is a parsed CALL migrate.<proc>(...), or SELECT * FROM
// migrate.<proc>(...), before its parameters are bound.
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
// Parse returns an *Error. SELECT * FROM migrate.<proc>(...), optionally
// with an alias, is the same command: JDBC's escape syntax, {call
// migrate.<proc>(...)}, sends it. A text that Classify took for a command
// but that holds none (a Unicode-escaped name, one read differently with
// standard_conforming_strings off, or a SELECT of more than a migrate
// procedure) is refused too: the proxy answers every text it takes, so
// that none can slip past it to PostgreSQL.
func Parse(sql string) (*Command, error) {
	if len(sql) > MaxCommandText {
		return nil, errorf(codeProgramLimitExceeded, "migrate command text of %d bytes exceeds the limit of %d bytes", len(sql), MaxCommandText)
	}
	if !utf8.ValidString(sql) {
		return nil, &Error{Code: codeCharacterNotInRepertoire, Msg: "migrate command text is not valid UTF-8",
			HintText: "Send migrate commands with client_encoding UTF8."}
	}
	tree, err := parseSQL(sql)
	if err != nil {
		return nil, &Error{Code: codeSyntaxError, Msg: err.Error()}
	}
	text := []byte(sql)
	var call *pg_query.FuncCall
	for _, raw := range tree.Stmts {
		fc, err := migrateCall(text, raw)
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
	c := &Command{Proc: call.Funcname[1].GetString_().GetSval(), Traceparent: traceparent(text)}
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
	DetailText: "The proxy answers every text that may hold CALL migrate.* or SELECT * FROM migrate.*(...) itself. A Unicode-escaped name (U&\"...\") after CALL or FROM, or backslashes in strings, which read differently with standard_conforming_strings off, make a text look like one.",
	HintText:   "Write the statement without them."}

// errNotSelectCommand refuses a SELECT * FROM migrate.<proc>(...) with more
// to it than the procedure.
var errNotSelectCommand = &Error{Code: codeFeatureNotSupported,
	Msg:        "a migrate procedure can only be selected from as SELECT * FROM migrate.<procedure>(...)",
	DetailText: "The proxy answers SELECT * FROM migrate.<procedure>(...), with an optional alias, as the migrate command it names, and refuses a SELECT with anything more: other tables or columns, WHERE, ORDER BY, LIMIT, set operations or column aliases.",
	HintText:   "Send the command alone and work on its rows in the client."}

// migrateCall returns the call of a statement CALL migrate.<proc>(...) or
// SELECT * FROM migrate.<proc>(...) [[AS] alias], or nil for any other
// statement. raw is a statement of sql, whose text tells the second form
// from a SELECT that parses the same (in parentheses, or with ALL). A
// SELECT that starts as the second form (see selectsMigrate) but has more
// to it is refused, and so is a database-qualified procedure (see
// migrateProcedure).
func migrateCall(sql []byte, raw *pg_query.RawStmt) (*pg_query.FuncCall, error) {
	call := raw.Stmt.GetCallStmt().GetFunccall()
	if sel := raw.Stmt.GetSelectStmt(); sel != nil && selectsMigrate(sql, skipSpace(sql, int(raw.StmtLocation))) {
		if call = selectedCall(sel); call == nil {
			return nil, errNotSelectCommand
		}
	}
	return migrateProcedure(call)
}

// migrateProcedure returns call if it calls migrate.<proc>, or nil if it
// calls another procedure or is nil. A database-qualified procedure,
// db.migrate.<proc>, and migrate.x.y are refused.
func migrateProcedure(call *pg_query.FuncCall) (*pg_query.FuncCall, error) {
	name := call.GetFuncname()
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

// selectedCall returns the function of sel if sel parses from SELECT *
// FROM f(...) [[AS] alias] and nothing more, else nil.
func selectedCall(sel *pg_query.SelectStmt) *pg_query.FuncCall {
	if !onlyFields(sel, "target_list", "from_clause", "limit_option", "op") ||
		sel.LimitOption != pg_query.LimitOption_LIMIT_OPTION_DEFAULT || sel.Op != pg_query.SetOperation_SETOP_NONE ||
		len(sel.TargetList) != 1 || len(sel.FromClause) != 1 {
		return nil
	}
	target := sel.TargetList[0].GetResTarget()
	star := target.GetVal().GetColumnRef()
	if !onlyFields(target, "val", "location") || !onlyFields(star, "fields", "location") ||
		len(star.GetFields()) != 1 || star.Fields[0].GetAStar() == nil {
		return nil
	}
	from := sel.FromClause[0].GetRangeFunction()
	if !onlyFields(from, "functions", "alias") || from.Alias != nil && !onlyFields(from.Alias, "aliasname") ||
		len(from.GetFunctions()) != 1 {
		return nil
	}
	// The function and its column definitions (those of ROWS FROM).
	items := from.Functions[0].GetList().GetItems()
	if len(items) != 2 || items[1].GetNode() != nil {
		return nil
	}
	return items[0].GetFuncCall()
}

// onlyFields reports whether m is set and has no fields set but those
// named: a node of the parse tree with nothing more to it than expected,
// whatever fields later versions of the parser add.
func onlyFields(m proto.Message, names ...protoreflect.Name) bool {
	r := m.ProtoReflect()
	if !r.IsValid() {
		return false
	}
	ok := true
	r.Range(func(f protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		ok = slices.Contains(names, f.Name())
		return ok
	})
	return ok
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
