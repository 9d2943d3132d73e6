package intercept

import (
	"errors"
	"reflect"
	"slices"
	"testing"
)

func str(s string) *string { return &s }

var bindTests = []struct {
	sql    string
	params []*string
	want   *Call
}{
	{
		`CALL migrate.create_model('invoice', '[{"name":"id","type":"Int"}]'::jsonb)`, nil,
		&Call{Proc: "create_model", Args: map[string]string{"model": "invoice", "fields": `[{"name":"id","type":"Int"}]`}},
	},
	{
		`CALL migrate.create_model(model => 'invoice', fields => $1, options => '{}', org => 'acme-corp', dry_run => 'YES')`,
		[]*string{str(`[]`)},
		&Call{Proc: "create_model", Org: "acme-corp", DryRun: true,
			Args: map[string]string{"model": "invoice", "fields": "[]", "options": "{}", "org": "acme-corp", "dry_run": "true"}},
	},
	{
		`CALL migrate.add_field('invoice', '{"name":"amount","type":"Float"}')`, nil,
		&Call{Proc: "add_field", Args: map[string]string{"model": "invoice", "field": `{"name":"amount","type":"Float"}`}},
	},
	{
		`CALL migrate.drop_field(field => 'amount', model => 'invoice', confirm => true)`, nil,
		&Call{Proc: "drop_field", Confirm: true, Args: map[string]string{"model": "invoice", "field": "amount", "confirm": "true"}},
	},
	{
		`CALL migrate.drop_model('invoice', confirm => ' on ', dry_run => 0)`, nil,
		&Call{Proc: "drop_model", Confirm: true, Args: map[string]string{"model": "invoice", "confirm": "true", "dry_run": "false"}},
	},
	{
		`CALL migrate.rename_field('invoice', 'amount', "to" => 'total')`, nil,
		&Call{Proc: "rename_field", Args: map[string]string{"model": "invoice", "from": "amount", "to": "total"}},
	},
	{
		`CALL migrate.alter_field($1, $2::jsonb, dry_run => $3)`,
		[]*string{str("invoice"), str(`{"name":"amount","nullable":false}`), str("f")},
		&Call{Proc: "alter_field", Args: map[string]string{"model": "invoice", "field": `{"name":"amount","nullable":false}`, "dry_run": "false"}},
	},
	{
		`CALL migrate.describe('invoice')`, nil,
		&Call{Proc: "describe", Args: map[string]string{"model": "invoice"}},
	},
	{
		`CALL migrate.list_models(org => $1)`, []*string{str("acme-corp")},
		&Call{Proc: "list_models", Org: "acme-corp", Args: map[string]string{"org": "acme-corp"}},
	},
	{
		`CALL migrate.history()`, nil,
		&Call{Proc: "history", Args: map[string]string{}},
	},
	{
		`CALL migrate.history(NULL, org => $1, dry_run => NULL)`, []*string{nil},
		&Call{Proc: "history", Args: map[string]string{}},
	},
	{
		`CALL migrate.verify(org => 'acme-corp')`, nil,
		&Call{Proc: "verify", Org: "acme-corp", Args: map[string]string{"org": "acme-corp"}},
	},
	{
		`CALL migrate.create_tenant('acme-corp', 'main')`, nil,
		&Call{Proc: "create_tenant", Org: "acme-corp", Args: map[string]string{"org": "acme-corp", "upstream": "main"}},
	},
	{
		`CALL migrate.drop_tenant(org => 'acme-corp', confirm => true)`, nil,
		&Call{Proc: "drop_tenant", Org: "acme-corp", Confirm: true, Args: map[string]string{"org": "acme-corp", "confirm": "true"}},
	},
}

func TestBind(t *testing.T) {
	for _, tt := range bindTests {
		c, err := Parse(tt.sql)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.sql, err)
			continue
		}
		got, err := c.Bind(tt.params)
		if err != nil {
			t.Errorf("Bind(%q): %v", tt.sql, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Bind(%q)\n got %+v\nwant %+v", tt.sql, got, tt.want)
		}
	}
}

func TestBindErrors(t *testing.T) {
	tests := []struct {
		sql       string
		params    []*string
		code, msg string
	}{
		{"CALL migrate.describe($1)", nil, "42P02", "there is no parameter $1"},
		{"CALL migrate.describe($2)", []*string{str("x")}, "42P02", "there is no parameter $2"},
		{"CALL migrate.describe($1)", []*string{nil}, "22004", `argument "model" of migrate.describe may not be NULL`},
		{"CALL migrate.describe(NULL)", nil, "22004", `argument "model" of migrate.describe may not be NULL`},
		{"CALL migrate.create_tenant(org => NULL::text)", nil, "22004", `argument "org" of migrate.create_tenant may not be NULL`},
		{"CALL migrate.add_field('invoice', '{bad')", nil, "22P02", `argument "field" of migrate.add_field must be valid JSON`},
		{"CALL migrate.create_model('invoice', $1)", []*string{str("")}, "22P02", `argument "fields" of migrate.create_model must be valid JSON`},
		{"CALL migrate.create_model('invoice', '[]', options => 'x')", nil, "22P02", `argument "options" of migrate.create_model must be valid JSON`},
		{"CALL migrate.verify(dry_run => 'maybe')", nil, "22P02", `argument "dry_run" of migrate.verify must be a boolean, not "maybe"`},
		{"CALL migrate.verify(confirm => $1)", []*string{str("2")}, "22P02", `argument "confirm" of migrate.verify must be a boolean, not "2"`},
	}
	for _, tt := range tests {
		c, err := Parse(tt.sql)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.sql, err)
			continue
		}
		_, err = c.Bind(tt.params)
		checkError(t, "Bind("+tt.sql+")", err, tt.code, tt.msg)
	}
}

func TestBindJSONDetail(t *testing.T) {
	c, err := Parse("CALL migrate.add_field('invoice', '{bad')")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Bind(nil)
	var e *Error
	if !errors.As(err, &e) || e.Detail() != "invalid character 'b' looking for beginning of object key string" {
		t.Errorf("Bind: %v, want a DETAIL on the JSON", err)
	}
}

func TestBindChecksCommand(t *testing.T) {
	c := &Command{Proc: "nope"}
	_, err := c.Bind(nil)
	checkError(t, "Bind(nope)", err, "42883", "procedure migrate.nope does not exist")
	c = &Command{Proc: "describe"}
	_, err = c.Bind(nil)
	checkError(t, "Bind(describe)", err, "42601", `missing argument "model" of migrate.describe`)
}

func TestProcedures(t *testing.T) {
	want := []string{"add_field", "adopt_model", "alter_field", "create_model", "create_tenant", "describe", "drop_field",
		"drop_model", "drop_tenant", "history", "list_models", "list_tenants", "rename_field", "verify"}
	if got := Procedures(); !slices.Equal(got, want) {
		t.Errorf("Procedures() = %v, want %v", got, want)
	}
	mutating := []string{"add_field", "adopt_model", "alter_field", "create_model", "create_tenant", "drop_field", "drop_model", "drop_tenant", "rename_field"}
	for _, p := range want {
		if got := (&Call{Proc: p}).Mutating(); got != slices.Contains(mutating, p) {
			t.Errorf("Call{Proc: %q}.Mutating() = %v", p, got)
		}
	}
}

func FuzzParseBind(f *testing.F) {
	for _, tt := range bindTests {
		f.Add(tt.sql, "x", "{}", uint8(0))
	}
	f.Fuzz(func(t *testing.T, sql, p1, p2 string, nulls uint8) {
		c, err := Parse(sql)
		if err != nil {
			checkCoded(t, err)
			return
		}
		if Classify([]byte(sql)) != Migrate {
			t.Errorf("Parse(%q) found a command that Classify missed", sql)
		}
		params := []*string{&p1, &p2}
		for i := range params {
			if nulls&(1<<i) != 0 {
				params[i] = nil
			}
		}
		call, err := c.Bind(params[:nulls>>2%3])
		if err != nil {
			checkCoded(t, err)
			return
		}
		for _, a := range procedures[c.Proc].args {
			if _, ok := call.Args[a.name]; a.required && !ok {
				t.Errorf("Bind(%q): required argument %q missing from %v", sql, a.name, call.Args)
			}
		}
	})
}

// checkCoded checks that err is an *Error with a SQLSTATE.
func checkCoded(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || len(e.SQLState()) != 5 {
		t.Errorf("error %v (%T) has no SQLSTATE", err, err)
	}
}
