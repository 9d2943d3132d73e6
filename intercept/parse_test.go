package intercept

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestParse(t *testing.T) {
	tests := []struct {
		sql  string
		want *Command
	}{
		{
			`CALL migrate.add_field('invoice', '{"name":"amount","type":"Float"}'::jsonb)`,
			&Command{Proc: "add_field", Args: []Arg{
				{Value: "invoice"},
				{Value: `{"name":"amount","type":"Float"}`, Type: "jsonb"},
			}},
		},
		{
			`call Migrate.ADD_FIELD(MODEL => 'invoice', "field" => jsonb '{}', dry_run => true, confirm => FALSE);`,
			&Command{Proc: "add_field", Args: []Arg{
				{Name: "model", Value: "invoice"},
				{Name: "field", Value: "{}", Type: "jsonb"},
				{Name: "dry_run", Value: "true"},
				{Name: "confirm", Value: "false"},
			}},
		},
		{
			`CALL migrate.rename_field('a'::text, CAST('b' AS varchar), 'c'::pg_catalog.text, org => 1::int, dry_run => 't'::boolean)`,
			&Command{Proc: "rename_field", Args: []Arg{
				{Value: "a", Type: "text"},
				{Value: "b", Type: "varchar"},
				{Value: "c", Type: "text"},
				{Name: "org", Value: "1", Type: "int4"},
				{Name: "dry_run", Value: "t", Type: "bool"},
			}},
		},
		{
			`CALL migrate.create_model(-1, 2.5, 99999999999, org => '{"a":1}'::json)`,
			&Command{Proc: "create_model", Args: []Arg{
				{Value: "-1"},
				{Value: "2.5"},
				{Value: "99999999999"},
				{Name: "org", Value: `{"a":1}`, Type: "json"},
			}},
		},
		{
			`CALL migrate.alter_field($2, $1::jsonb, dry_run => $3)`,
			&Command{Proc: "alter_field", Args: []Arg{
				{Kind: Param, Param: 2},
				{Kind: Param, Param: 1, Type: "jsonb"},
				{Name: "dry_run", Kind: Param, Param: 3},
			}},
		},
		{
			`CALL migrate.history(NULL::text)`,
			&Command{Proc: "history", Args: []Arg{{Kind: Null, Type: "text"}}},
		},
		{
			"/*action='add',traceparent='" + tp + "'*/ CALL migrate.verify()",
			&Command{Proc: "verify", Traceparent: tp},
		},
		{
			"CALL migrate.list_models() /*traceparent='00%2D4bf92f3577b34da6a3ce929d0e0e4736%2D00f067aa0ba902b7%2D01',tracestate='x%3Dy'*/",
			&Command{Proc: "list_models", Traceparent: tp},
		},
		{
			"-- traceparent='" + tp + "'\nCALL migrate.verify() /* traceparent='not-one' */ /* traceparent='00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01' */",
			&Command{Proc: "verify"},
		},
		{
			"CALL migrate.verify() /*traceparent='00-00000000000000000000000000000000-00f067aa0ba902b7-01'*/ /*traceparent='ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'*/",
			&Command{Proc: "verify"},
		},
		// What pgjdbc sends for {call migrate.add_field(?, ?)}.
		{
			"select * from migrate.add_field($1, $2) as result",
			&Command{Proc: "add_field", Args: []Arg{{Kind: Param, Param: 1}, {Kind: Param, Param: 2}}},
		},
		{
			"select * from migrate.add_field($1,$2)  as result",
			&Command{Proc: "add_field", Args: []Arg{{Kind: Param, Param: 1}, {Kind: Param, Param: 2}}},
		},
		{
			"SELECT * FROM migrate.describe('invoice');",
			&Command{Proc: "describe", Args: []Arg{{Value: "invoice"}}},
		},
		{
			`Select/**/*/**/From "migrate" . Add_Field(model => 'invoice', field => '{}'::jsonb, dry_run => true) r`,
			&Command{Proc: "add_field", Args: []Arg{
				{Name: "model", Value: "invoice"},
				{Name: "field", Value: "{}", Type: "jsonb"},
				{Name: "dry_run", Value: "true"},
			}},
		},
		{
			"/*traceparent='" + tp + "'*/ SELECT * FROM migrate.list_models() AS result",
			&Command{Proc: "list_models", Traceparent: tp},
		},
	}
	for _, tt := range tests {
		got, err := Parse(tt.sql)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.sql, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q)\n got %+v\nwant %+v", tt.sql, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		sql, code, msg string
	}{
		{"CALL migrate.add_field(", "42601", "syntax error at end of input"},
		{"CALL migrate.", "42601", "syntax error at end of input"},
		{"CALL migrate.nope()", "42883", "procedure migrate.nope does not exist"},
		{"CALL migrate.verify(); SELECT 1", "0A000", "a migrate command must be alone in its query"},
		{"SELECT 1; CALL migrate.verify()", "0A000", "a migrate command must be alone in its query"},
		{"CALL migrate.describe(invoice)", "42601", "argument 1 of migrate.describe must be a literal or a $n parameter"},
		{"CALL migrate.describe(model => lower('X'))", "42601", "argument 1 of migrate.describe must be a literal or a $n parameter"},
		{"CALL migrate.history((SELECT 'x'))", "42601", "argument 1 of migrate.history must be a literal or a $n parameter"},
		{"CALL migrate.describe('x'::text::jsonb)", "42601", "argument 1 of migrate.describe must be a literal or a $n parameter"},
		{"CALL migrate.describe('x' || 'y')", "42601", "argument 1 of migrate.describe must be a literal or a $n parameter"},
		{"CALL migrate.add_field('x', '2024-01-01'::date)", "42601", "argument 2 of migrate.add_field has a cast that is not allowed; cast only to jsonb, json, text, varchar, boolean or integer"},
		{"CALL migrate.describe('x'::text[])", "42601", "argument 1 of migrate.describe has a cast that is not allowed; cast only to jsonb, json, text, varchar, boolean or integer"},
		{"CALL migrate.describe('x'::varchar(3))", "42601", "argument 1 of migrate.describe has a cast that is not allowed; cast only to jsonb, json, text, varchar, boolean or integer"},
		{"CALL migrate.describe(B'101')", "42601", "argument 1 of migrate.describe must be a string, number or boolean literal"},
		{"CALL migrate.describe($0)", "42P02", "argument 1 of migrate.describe refers to $0; there is no such parameter"},
		{"CALL migrate.describe(VARIADIC ARRAY['x'])", "42601", "migrate.describe takes a plain list of arguments"},
		{"CALL migrate.describe(model => 'x', 'y')", "42601", "positional argument cannot follow named argument"},
		{"CALL migrate.describe('x', 'y')", "42601", "too many arguments for migrate.describe"},
		{"CALL migrate.describe('x', dry_run => true, colour => 'red')", "42601", `procedure migrate.describe has no argument "colour"`},
		{"CALL migrate.describe('x', model => 'y')", "42601", `argument "model" of migrate.describe is given more than once`},
		{"CALL migrate.verify(org => 'a', org => 'b')", "42601", `argument "org" of migrate.verify is given more than once`},
		{"CALL migrate.add_field(field => '{}')", "42601", `missing argument "model" of migrate.add_field`},
		{"CALL migrate.create_tenant(upstream => 'main')", "42601", `missing argument "org" of migrate.create_tenant`},
		{"SELECT * FROM migrate.nope() AS result", "42883", "procedure migrate.nope does not exist"},
		{"SELECT * FROM migrate.verify() AS result; SELECT 1", "0A000", "a migrate command must be alone in its query"},
		{"SELECT * FROM migrate.describe(lower('X'))", "42601", "argument 1 of migrate.describe must be a literal or a $n parameter"},
		{"SELECT * FROM migrate.describe(VARIADIC ARRAY['x'])", "42601", "migrate.describe takes a plain list of arguments"},
		// pgjdbc's {? = call migrate.describe(?)}: the out parameter first.
		{"select * from migrate.describe($1,$2) as result", "42601", "too many arguments for migrate.describe"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.sql)
		checkError(t, "Parse("+tt.sql+")", err, tt.code, tt.msg)
	}
}

func TestParseHints(t *testing.T) {
	_, err := Parse("CALL migrate.nope()")
	if want := "The migrate procedures are add_field, adopt_model, alter_field, create_model, create_tenant, describe, drop_field, drop_model, drop_tenant, history, list_models, list_tenants, rename_field, verify."; hint(err) != want {
		t.Errorf("hint %q, want %q", hint(err), want)
	}
	_, err = Parse("CALL migrate.create_model()")
	if want := "Call it as migrate.create_model(model, fields[, options]), with org, dry_run and confirm by name."; hint(err) != want {
		t.Errorf("hint %q, want %q", hint(err), want)
	}
	_, err = Parse("CALL migrate.history(1, 2)")
	if want := "Call it as migrate.history([model]), with org, dry_run and confirm by name."; hint(err) != want {
		t.Errorf("hint %q, want %q", hint(err), want)
	}
	_, err = Parse("CALL migrate.drop_tenant()")
	if want := "Call it as migrate.drop_tenant(org), with dry_run and confirm by name."; hint(err) != want {
		t.Errorf("hint %q, want %q", hint(err), want)
	}
}

func hint(err error) string {
	var e *Error
	if !errors.As(err, &e) {
		return ""
	}
	return e.Hint()
}

func TestParseNotCommand(t *testing.T) {
	for _, sql := range []string{
		"",
		"-- nothing",
		"SELECT 1",
		`CALL U&"other".x()`,
		"CREATE PROCEDURE p() BEGIN ATOMIC SELECT 1; CALL migrate.verify(); END",
		`SELECT '\''; CALL migrate.list_models(); --'`,
		`SELECT * FROM U&"other".x()`,
		"SELECT migrate.verify()",
		"SELECT * FROM migrate.list_models",
		"(SELECT * FROM migrate.verify())",
		"SELECT ALL * FROM migrate.verify()",
	} {
		if _, err := Parse(sql); err != errNotCommand {
			t.Errorf("Parse(%q): %v, want errNotCommand", sql, err)
		}
	}
	for _, sql := range []string{"CALL migrate.x.y()", "CALL crm.migrate.list_models()", `CALL "crm"."migrate".verify()`,
		"SELECT * FROM migrate.x.y()", "SELECT * FROM crm.migrate.list_models() AS result"} {
		_, err := Parse(sql)
		checkError(t, sql, err, "0A000", "cross-database references are not implemented for migrate commands")
	}
}

// TestParseSelectNotCommand refuses a SELECT that starts as SELECT * FROM
// migrate.<proc>(...) but has more to it: the proxy takes it and must not
// run it as the command.
func TestParseSelectNotCommand(t *testing.T) {
	for _, sql := range []string{
		"SELECT * FROM migrate.verify() WHERE false",
		"SELECT * FROM migrate.verify(), pg_class",
		"SELECT * FROM migrate.verify() JOIN pg_class ON true",
		"SELECT * FROM migrate.verify() CROSS JOIN LATERAL migrate.list_models()",
		"SELECT * FROM migrate.verify() AS result(model)",
		"SELECT * FROM migrate.verify() AS result(model text)",
		"SELECT * FROM migrate.verify() WITH ORDINALITY",
		"SELECT * FROM migrate.verify() GROUP BY 1",
		"SELECT * FROM migrate.verify() HAVING true",
		"SELECT * FROM migrate.verify() WINDOW w AS ()",
		"SELECT * FROM migrate.verify() ORDER BY 1",
		"SELECT * FROM migrate.verify() LIMIT 1",
		"SELECT * FROM migrate.verify() LIMIT ALL",
		"SELECT * FROM migrate.verify() OFFSET 0",
		"SELECT * FROM migrate.verify() FETCH FIRST 1 ROW ONLY",
		"SELECT * FROM migrate.verify() FOR UPDATE",
		"SELECT * FROM migrate.verify() UNION SELECT * FROM migrate.verify()",
		"SELECT * FROM migrate.verify() EXCEPT SELECT 1",
		"SELECT * FROM migrate.models.x",
	} {
		_, err := Parse(sql)
		checkError(t, sql, err, "0A000", "a migrate procedure can only be selected from as SELECT * FROM migrate.<procedure>(...)")
	}
}

func TestParseLimits(t *testing.T) {
	_, err := Parse("CALL migrate.describe($2147483647)")
	checkError(t, "$2147483647", err, "42P02", "argument 1 of migrate.describe refers to $2147483647; there is no such parameter")
	// describe takes model, org, dry_run and confirm: $4 is the highest.
	if _, err := Parse("CALL migrate.describe($4)"); err != nil {
		t.Errorf("$4: %v", err)
	}
	_, err = Parse("CALL migrate.describe($5)")
	checkError(t, "$5", err, "42P02", "argument 1 of migrate.describe refers to $5; there is no such parameter")
	_, err = Parse("CALL migrate.describe('\x95\x5c')")
	checkError(t, "SJIS text", err, "22021", "migrate command text is not valid UTF-8")
	long := "CALL migrate.describe('" + strings.Repeat("x", MaxCommandText) + "')"
	_, err = Parse(long)
	checkError(t, "long text", err, "54000", fmt.Sprintf("migrate command text of %d bytes exceeds the limit of %d bytes", len(long), MaxCommandText))
}

func FuzzParamNumber(f *testing.F) {
	for _, n := range []uint32{0, 1, 4, 5, 1 << 16, 1<<31 - 1, 1 << 31, 1<<32 - 1} {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, n uint32) {
		for _, form := range []string{"CALL migrate.describe($%d)", "SELECT * FROM migrate.describe($%d) AS result"} {
			c, err := Parse(fmt.Sprintf(form, n))
			if err != nil {
				checkCoded(t, err)
				continue
			}
			if types := c.ParamTypes(); n == 0 || n > 4 || len(types) != int(n) {
				t.Errorf("%s: $%d accepted with %d parameter types", form, n, len(types))
			}
			if _, err := c.Bind(make([]*string, min(n, 4))); err == nil && n > 0 {
				t.Errorf("%s: $%d bound to NULL for a required argument", form, n)
			}
		}
	})
}

func TestParamCount(t *testing.T) {
	c, err := Parse("CALL migrate.rename_field($3, $1, 'x', dry_run => $2)")
	if err != nil {
		t.Fatal(err)
	}
	if n := c.ParamCount(); n != 3 {
		t.Errorf("ParamCount() = %d, want 3", n)
	}
}

// checkError checks that err is an *Error with that SQLSTATE and message.
func checkError(t *testing.T, what string, err error, code, msg string) {
	t.Helper()
	var e *Error
	switch {
	case !errors.As(err, &e):
		t.Errorf("%s: error %v, want an *Error", what, err)
	case e.SQLState() != code || e.Error() != msg:
		t.Errorf("%s: error %s %q, want %s %q", what, e.SQLState(), e.Error(), code, msg)
	}
}
