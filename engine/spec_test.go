package engine

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// Names that no model, field or referenced table may take.
var badNames = []string{
	"",
	`in"voice`,
	"invoice; DROP TABLE x",
	"invoice--",
	"in/*x*/voice",
	"inv'oice",
	"façade",
	"invoice☃",
	"with space",
	" invoice",
	"invoice\n",
	"1invoice",
	"in-voice",
	"in$voice",
	strings.Repeat("a", 64),
	"select",
	"SELECT",
	"user",
	"ctid",
	"xmin",
}

// Names that are fine, as a contrast to badNames.
var goodNames = []string{"invoice", "Invoice", "_tmp", "a1", "order_line", strings.Repeat("a", 63)}

func TestSpecNames(t *testing.T) {
	for _, name := range badNames {
		checkNameUses(t, name, true)
	}
	for _, name := range goodNames {
		checkNameUses(t, name, false)
	}
}

// checkNameUses validates operations that use name as a model, field,
// referenced table or referenced column.
func checkNameUses(t *testing.T, name string, bad bool) {
	t.Helper()
	field := specJSON(`{"name": "f", "type": "Int"}`)
	named := field
	named.Name = name
	refTable := specJSON(`{"name": "f", "type": "Int", "references": {"table": "t", "column": "id"}}`)
	refTable.References.Table = name
	refColumn := specJSON(`{"name": "f", "type": "Int", "references": {"table": "t", "column": "id"}}`)
	refColumn.References.Column = name
	ops := []Operation{
		&CreateModel{Model: name, Fields: []FieldSpec{field}},
		&CreateModel{Model: "m", Fields: []FieldSpec{named}},
		&AddField{Model: name, Field: field},
		&AddField{Model: "m", Field: named},
		&AddField{Model: "m", Field: refTable},
		&AddField{Model: "m", Field: refColumn},
		&AlterField{Model: "m", Field: named},
		&DropField{Model: name, Field: "f"},
		&DropField{Model: "m", Field: name},
		&DropModel{Model: name},
		&RenameField{Model: name, From: "f", To: "g"},
		&RenameField{Model: "m", From: name, To: "g"},
		&RenameField{Model: "m", From: "f", To: name},
	}
	for _, op := range ops {
		checkValidate(t, op, bad, "")
	}
}

func TestSpecOrgNames(t *testing.T) {
	tests := []struct {
		org string
		ok  bool
	}{
		{"acme-corp", true},
		{"0day_co", true},
		{"a", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"Acme", false},
		{"-acme", false},
		{"_acme", false},
		{"acme corp", false},
		{`acme"`, false},
		{"acme'", false},
		{"acme;drop", false},
		{"acme--", true},
		{"acme/*", false},
		{"acmé", false},
		{"acme\n", false},
		{"acme.corp", false},
		{"pg_monitor", false},
		{"pg_read_all_data", false},
		{"pg_", false},
		{"pg-monitor", true},
		{"pgx", true},
	}
	for _, tt := range tests {
		checkValidate(t, &CreateTenant{Org: tt.org}, !tt.ok, "")
		checkValidate(t, &DropTenant{Org: tt.org}, !tt.ok, "")
	}
}

func TestSpecFields(t *testing.T) {
	tests := []struct {
		field string
		ok    bool
	}{
		{`{"name": "f", "type": "String"}`, true},
		{`{"name": "f", "type": "Decimal"}`, false},
		{`{"name": "f", "type": "string"}`, false},
		{`{"name": "f"}`, false},
		{`{"name": "f", "type": "String", "maxLength": 10485760}`, true},
		{`{"name": "f", "type": "String", "maxLength": 10485761}`, false},
		{`{"name": "f", "type": "String", "maxLength": -1}`, false},
		{`{"name": "f", "type": "Text", "maxLength": 10}`, false},
		{`{"name": "f", "type": "Int", "primaryKey": true, "nullable": true}`, false},

		{`{"name": "f", "type": "String", "default": "it's; DROP TABLE x; --"}`, true},
		{`{"name": "f", "type": "String", "maxLength": 5, "default": "12345"}`, true},
		{`{"name": "f", "type": "String", "maxLength": 5, "default": "☃☃☃☃☃"}`, true},
		{`{"name": "f", "type": "String", "maxLength": 5, "default": "123456"}`, false},
		{`{"name": "f", "type": "String", "default": 42}`, false},
		{`{"name": "f", "type": "String", "default": true}`, false},
		{`{"name": "f", "type": "Text", "default": "nul \u0000 byte"}`, false},
		{`{"name": "f", "type": "Text", "default": ["x"]}`, false},
		{`{"name": "f", "type": "Int", "default": 2147483647}`, true},
		{`{"name": "f", "type": "Int", "default": -2147483648}`, true},
		{`{"name": "f", "type": "Int", "default": 2147483648}`, false},
		{`{"name": "f", "type": "Int", "default": -2147483649}`, false},
		{`{"name": "f", "type": "Int", "default": 1.5}`, false},
		{`{"name": "f", "type": "Int", "default": 1e3}`, false},
		{`{"name": "f", "type": "Int", "default": "42"}`, false},
		{`{"name": "f", "type": "Int", "default": "1; DROP TABLE x"}`, false},
		{`{"name": "f", "type": "Float", "default": -1.5e-300}`, true},
		{`{"name": "f", "type": "Float", "default": 1e400}`, false},
		{`{"name": "f", "type": "Float", "default": "1.5"}`, false},
		{`{"name": "f", "type": "Float", "default": "NaN"}`, false},
		{`{"name": "f", "type": "Boolean", "default": false}`, true},
		{`{"name": "f", "type": "Boolean", "default": "yes"}`, false},
		{`{"name": "f", "type": "Boolean", "default": "true"}`, false},
		{`{"name": "f", "type": "Boolean", "default": 1}`, false},
		{`{"name": "f", "type": "DateTime", "default": "2024-01-01T00:00:00Z"}`, true},
		{`{"name": "f", "type": "DateTime", "default": "2024-01-01T00:00:00.123456+05:30"}`, true},
		{`{"name": "f", "type": "DateTime", "default": "2024-13-01T00:00:00Z"}`, false},
		{`{"name": "f", "type": "DateTime", "default": "2024-01-01"}`, false},
		{`{"name": "f", "type": "DateTime", "default": "2024-01-01 00:00:00"}`, false},
		{`{"name": "f", "type": "DateTime", "default": "now"}`, false},
		{`{"name": "f", "type": "DateTime", "default": "2024-01-01T00:00:00Z'; DROP TABLE x; --"}`, false},
		{`{"name": "f", "type": "DateTime", "default": 1704067200}`, false},
		{`{"name": "f", "type": "Json", "default": {"a": [1, "it's", null]}}`, true},
		{`{"name": "f", "type": "Json", "default": "just a string"}`, true},
		{`{"name": "f", "type": "Json", "default": {"a": "\u0000"}}`, false},

		{`{"name": "f", "type": "Int", "references": {"table": "t", "column": "id"}}`, true},
		{`{"name": "f", "type": "Int", "references": {"schema": "shared", "table": "t", "column": "id"}}`, true},
		{`{"name": "f", "type": "Int", "references": {"schema": "other", "table": "t", "column": "id"}}`, false},
		{`{"name": "f", "type": "Int", "references": {"schema": "pg_catalog", "table": "pg_authid", "column": "oid"}}`, false},
		{`{"name": "f", "type": "Int", "references": {"table": "t", "column": "id", "onDelete": "NO ACTION"}}`, false},
		{`{"name": "f", "type": "Int", "references": {"table": "t", "column": "id", "onDelete": "cascade"}}`, false},
		{`{"name": "f", "type": "Int", "references": {"table": "t", "column": "id", "onDelete": "CASCADE; DROP TABLE x"}}`, false},
		{`{"name": "f", "type": "Int", "nullable": false, "references": {"table": "t", "column": "id", "onDelete": "SET NULL"}}`, false},
		{`{"name": "f", "type": "Int", "references": {"table": "t"}}`, false},
	}
	for _, tt := range tests {
		f := specJSON(tt.field)
		checkValidate(t, &AddField{Model: "m", Field: f}, !tt.ok, "f")
		checkValidate(t, &CreateModel{Model: "m", Fields: []FieldSpec{f}}, !tt.ok, "f")
	}
}

func TestSpecModels(t *testing.T) {
	tests := []struct {
		name   string
		op     Operation
		ok     bool
		field  string // the field the error names
		reason string // part of the error message
	}{
		{"no fields", &CreateModel{Model: "m"}, false, "", "at least one field"},
		{"duplicate field", &CreateModel{Model: "m", Fields: specsJSON(`{"name": "a", "type": "Int"}`, `{"name": "b", "type": "Int"}`, `{"name": "a", "type": "Text"}`)}, false, "a", "twice"},
		{"duplicate id", &CreateModel{Model: "m", Fields: specsJSON(`{"name": "id", "type": "Int"}`, `{"name": "id", "type": "Int"}`)}, false, "id", "twice"},
		{"two primary keys", &CreateModel{Model: "m", Fields: specsJSON(`{"name": "a", "type": "Int", "primaryKey": true}`, `{"name": "b", "type": "Int", "primaryKey": true}`)}, false, "", "primary key"},
		{"id and another primary key", &CreateModel{Model: "m", Fields: specsJSON(`{"name": "id", "type": "Int"}`, `{"name": "b", "type": "Int", "primaryKey": true}`)}, true, "", ""},
		{"primary key not nullable", &CreateModel{Model: "m", Fields: specsJSON(`{"name": "k", "type": "Int", "primaryKey": true, "nullable": false}`)}, true, "", ""},
		{"nullable id", &CreateModel{Model: "m", Fields: specsJSON(`{"name": "id", "type": "Int", "nullable": true}`)}, false, "id", "nullable"},
		{"nullable id beside a primary key", &CreateModel{Model: "m", Fields: specsJSON(`{"name": "id", "type": "Int", "nullable": true}`, `{"name": "k", "type": "Int", "primaryKey": true}`)}, true, "", ""},
		{"bad second field", &CreateModel{Model: "m", Fields: specsJSON(`{"name": "a", "type": "Int"}`, `{"name": "b", "type": "Int", "default": "x"}`)}, false, "b", "integer"},
		{"add a primary key", &AddField{Model: "m", Field: specJSON(`{"name": "k", "type": "Int", "primaryKey": true}`)}, false, "k", "primary key"},
		{"alter a primary key", &AlterField{Model: "m", Field: specJSON(`{"name": "k", "type": "Int", "primaryKey": true, "default": 1}`)}, true, "", ""},
		{"rename to itself", &RenameField{Model: "m", From: "a", To: "a"}, false, "a", "new name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkValidate(t, tt.op, !tt.ok, tt.field)
			if err != nil && !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %q does not say %q", err, tt.reason)
			}
		})
	}
}

// checkValidate validates op and checks the outcome: an InvalidSpecError
// (SQLSTATE 22023) naming field if bad, else none. It returns the error.
func checkValidate(t *testing.T, op Operation, bad bool, field string) error {
	t.Helper()
	err := op.Validate(&planOptions)
	js, _ := json.Marshal(op)
	if !bad {
		if err != nil {
			t.Errorf("%s %s: unexpected error %v", op.Kind(), js, err)
		}
		return err
	}
	var spec *InvalidSpecError
	switch {
	case !errors.As(err, &spec):
		t.Errorf("%s %s: got %v, want an InvalidSpecError", op.Kind(), js, err)
	case spec.SQLState() != "22023":
		t.Errorf("%s %s: SQLSTATE %s", op.Kind(), js, spec.SQLState())
	case field != "" && spec.Field != field:
		t.Errorf("%s %s: error %v names field %q, want %q", op.Kind(), js, err, spec.Field, field)
	}
	return err
}

func TestSpecParse(t *testing.T) {
	bad := []string{
		`{"name": "f", "type": "Int", "nulable": false}`,
		`{"name": "f", "type": "Int", "max_length": 10}`,
		`{"name": "f", "type": "Int", "references": {"table": "t", "column": "id", "on_delete": "CASCADE"}}`,
		`{"name": "f", "type": "Int"} {"name": "g"}`,
		`{"name": "f", "type": "Int"`,
		`{"name": "f", "type": "Int", "nullable": "no"}`,
		`{"name": 1, "type": "Int"}`,
		`[{"name": "f", "type": "Int"}]`,
	}
	for _, js := range bad {
		_, err := ParseField([]byte(js))
		var spec *InvalidSpecError
		if !errors.As(err, &spec) {
			t.Errorf("ParseField(%s): got %v, want an InvalidSpecError", js, err)
		}
	}
	if _, err := ParseFields([]byte(`[{"name": "f", "type": "Int", "colour": "red"}]`)); err == nil {
		t.Error("ParseFields took an unknown key")
	}
	fs, err := ParseFields([]byte(`[{"name": "id", "type": "Int"}, {"name": "f", "type": "Json", "default": {"x": 1}}]`))
	if err != nil || len(fs) != 2 || string(fs[1].Default) != `{"x": 1}` {
		t.Errorf("ParseFields: %+v, %v", fs, err)
	}
}

func TestSpecDefaultSQL(t *testing.T) {
	tests := []struct{ field, want string }{
		{`{"name": "f", "type": "String", "default": "it's; DROP TABLE x; --"}`, `'it''s; DROP TABLE x; --'`},
		{`{"name": "f", "type": "Text", "default": "back\\slash\\'"}`, `'back\slash\'''`},
		{`{"name": "f", "type": "Text", "default": "'; /* */ $$ $x$"}`, `'''; /* */ $$ $x$'`},
		{`{"name": "f", "type": "Text", "default": "line\nbreak"}`, "'line\nbreak'"},
		{`{"name": "f", "type": "Int", "default": -7}`, `-7`},
		{`{"name": "f", "type": "Float", "default": 2.50}`, `2.5`},
		{`{"name": "f", "type": "Float", "default": 1E+2}`, `100`},
		{`{"name": "f", "type": "Boolean", "default": true}`, `true`},
		{`{"name": "f", "type": "DateTime", "default": "2024-01-01T05:30:00+05:30"}`, `'2024-01-01T00:00:00Z'::timestamptz`},
		{`{"name": "f", "type": "Json", "default": {"b": "it's", "a": [1, 2]}}`, `'{"a":[1,2],"b":"it''s"}'::jsonb`},
	}
	for _, tt := range tests {
		got, err := specJSON(tt.field).DefaultSQL()
		if err != nil || got != tt.want {
			t.Errorf("DefaultSQL(%s) = %q, %v; want %q", tt.field, got, err, tt.want)
		}
	}
}
