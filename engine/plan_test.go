package engine

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The golden tests compile every operation against states built by hand
// and compare the plan, rendered as SQL with comments, with
// testdata/plans/<kind>/<case>.sql. Run with -update to rewrite the files
// after a deliberate change, then review the diff.

var updateGolden = flag.Bool("update", false, "rewrite the golden plans in testdata/plans")

// planOptions are the options the golden operations validate with.
var planOptions = Options{AllowedSchemas: []string{"shared"}}

// specJSON parses a FieldSpec from its JSON form, as a CALL passes it.
func specJSON(js string) FieldSpec {
	f, err := ParseField([]byte(js))
	if err != nil {
		panic(fmt.Sprintf("%s: %v", js, err))
	}
	return f
}

// specsJSON parses FieldSpecs.
func specsJSON(js ...string) []FieldSpec {
	fs := make([]FieldSpec, len(js))
	for i, s := range js {
		fs[i] = specJSON(s)
	}
	return fs
}

// The invoice model of tenant acme-corp, live and in the metadata, as the
// model operations find it.
func goldenInvoiceTable() *Table {
	return &Table{Name: "invoice", Owned: true, Columns: []Column{
		{Name: "id", Type: "character varying(100)", NotNull: true, PrimaryKey: true},
		{Name: "name", Type: "character varying(100)", NotNull: true},
		{Name: "amount", Type: "double precision", Default: "'0'::double precision"},
		{Name: "status", Type: "character varying(20)", Default: "'draft'::character varying"},
		{Name: "code", Type: "text", Unique: "invoice_code_key"},
		{Name: "customer_id", Type: "integer", ReferenceName: "invoice_customer_id_fkey", ReferenceValid: true,
			Reference: &Reference{Schema: "acme-corp", Table: "customer", Column: "id", OnDelete: Cascade}},
		{Name: "data", Type: "jsonb", Default: `'{"a": 1, "b": [true, null]}'::jsonb`},
	}}
}

func goldenInvoiceMeta() *Model {
	return &Model{Name: "invoice", Fields: specsJSON(
		`{"name": "id", "type": "String", "primaryKey": true}`,
		`{"name": "name", "type": "String", "nullable": false}`,
		`{"name": "amount", "type": "Float", "default": 0}`,
		`{"name": "status", "type": "String", "maxLength": 20, "default": "draft"}`,
		`{"name": "code", "type": "Text", "unique": true}`,
		`{"name": "customer_id", "type": "Int", "references": {"table": "customer", "column": "id", "onDelete": "CASCADE"}}`,
		`{"name": "data", "type": "Json", "default": {"b": [true, null], "a": 1.0}}`,
	)}
}

// goldenTenant is the state of tenant acme-corp, with its tenant role, and
// the given live table.
func goldenTenant(t *Table, rows bool, meta *Model) *State {
	return &State{Org: "acme-corp", Schema: "acme-corp", SchemaExists: true, Role: goldenRole(), Table: t, HasRows: rows, Meta: meta}
}

// goldenRole is the tenant role of acme-corp as the engine makes it, and
// goldenLogin its login role.
func goldenRole() *Role { return &Role{Name: "acme-corp"} }

func goldenLogin() *Role {
	return &Role{Name: "acme-corp.login", CanLogin: true, MemberOf: []string{"acme-corp"}}
}

// goldenRoles is an existing tenant acme-corp with the given tenant and
// login roles.
func goldenRoles(role, login *Role) *State {
	return &State{Org: "acme-corp", Schema: "acme-corp", SchemaExists: true, Registered: true, Role: role, Login: login, Grants: goldenGranted}
}

// goldenUnowned returns the state with the live table owned by another
// role than the engine's.
func goldenUnowned(s *State) *State {
	s.Table.Owned = false
	return goldenForeign(s, s.Table.Name)
}

// goldenForeign returns the state with other tables of the tenant's schema
// owned by another role than the engine's.
func goldenForeign(s *State, names ...string) *State {
	s.Unowned = append(s.Unowned, names...)
	return s
}

// goldenGranted is a tenant role with every privilege the engine gives it
// in its schema.
var goldenGranted = Grants{Usage: true, Create: true, DefaultTables: true, DefaultSequences: true}

// goldenCustomers is the demo table that adopt_model takes over, with its
// tenant's role and without metadata.
func goldenCustomers(owned bool) *State {
	return goldenTenant(&Table{Name: "customers", Owned: owned, Columns: []Column{
		{Name: "id", Type: "integer", NotNull: true, PrimaryKey: true},
		{Name: "name", Type: "text"},
	}}, true, nil)
}

// goldenLegacy is a table made by hand with a column of every type a field
// can describe.
func goldenLegacy() *State {
	return goldenTenant(&Table{Name: "legacy", Columns: []Column{
		{Name: "code", Type: "character varying(12)", NotNull: true, PrimaryKey: true},
		{Name: "status", Type: "character varying(20)", NotNull: true, Default: "'active'::character varying"},
		{Name: "qty", Type: "integer", Default: "0"},
		{Name: "rate", Type: "double precision", Default: "'1.5'::double precision"},
		{Name: "paid", Type: "boolean", NotNull: true, Default: "true"},
		{Name: "due", Type: "timestamp with time zone", Default: "'2024-01-01 00:00:00+00'::timestamp with time zone"},
		{Name: "notes", Type: "text", Default: "'it''s'::text"},
		{Name: "data", Type: "jsonb", Default: `'{"a": 1}'::jsonb`},
		{Name: "email", Type: "character varying(200)", Unique: "legacy_email_key"},
		{Name: "customer_id", Type: "integer", ReferenceName: "legacy_customer_id_fkey", ReferenceValid: true,
			Reference: &Reference{Schema: "acme-corp", Table: "customer", Column: "id", OnDelete: Cascade}},
		{Name: "region_id", Type: "integer", ReferenceName: "legacy_region_id_fkey", ReferenceValid: true,
			Reference: &Reference{Schema: "shared", Table: "region", Column: "id", OnDelete: Restrict}},
	}}, true, nil)
}

// goldenInvoice is the state of the invoice model, with or without rows.
func goldenInvoice(rows bool) *State {
	return goldenTenant(goldenInvoiceTable(), rows, goldenInvoiceMeta())
}

// goldenColumn returns the state with the live column c replaced.
func goldenColumn(s *State, c Column) *State {
	*s.Table.Column(c.Name) = c
	return s
}

// goldenAddColumn returns the state with the live column c added, as a
// run of add_field stopped between phases leaves it.
func goldenAddColumn(s *State, c Column) *State {
	s.Table.Columns = append(s.Table.Columns, c)
	return s
}

// goldenRename returns the state with a live column renamed.
func goldenRename(s *State, from, to string) *State {
	s.Table.Column(from).Name = to
	return s
}

type goldenCase struct {
	name  string
	op    Operation
	state *State
	// wantErr, if set, points to the error type Plan must return.
	wantErr any
}

func goldenCases() []goldenCase {
	longModel := strings.Repeat("m", 63)
	longField := strings.Repeat("f", 63)
	longTable := &Table{Name: longModel, Owned: true, Columns: []Column{{Name: "id", Type: "integer", NotNull: true, PrimaryKey: true}}}
	return []goldenCase{
		// create_model
		{name: "every_type", op: &CreateModel{Model: "invoice", Fields: specsJSON(
			`{"name": "id", "type": "String"}`,
			`{"name": "name", "type": "String", "nullable": false}`,
			`{"name": "title", "type": "String", "maxLength": 200, "default": "it's; DROP TABLE x; --"}`,
			`{"name": "qty", "type": "Int", "nullable": false, "default": -5}`,
			`{"name": "amount", "type": "Float", "default": 1.5}`,
			`{"name": "paid", "type": "Boolean", "default": false}`,
			`{"name": "due", "type": "DateTime", "default": "2024-01-01T12:00:00.5+05:30"}`,
			`{"name": "notes", "type": "Text", "default": "C:\\new\\table /* */ $$ \" ''"}`,
			`{"name": "data", "type": "Json", "default": {"note": "it's", "n": [1, 2.5]}}`,
			`{"name": "code", "type": "String", "maxLength": 20, "unique": true}`,
			`{"name": "customer_id", "type": "Int", "references": {"table": "customer", "column": "id", "onDelete": "CASCADE"}}`,
			`{"name": "contact_id", "type": "Int", "references": {"table": "contact", "column": "id", "onDelete": "SET NULL"}}`,
			`{"name": "owner_id", "type": "Int", "references": {"table": "user_account", "column": "id", "onDelete": "RESTRICT"}}`,
			`{"name": "region_id", "type": "Int", "references": {"schema": "shared", "table": "region", "column": "id"}}`,
		)}, state: goldenTenant(nil, false, nil)},
		{name: "primary_key_field", op: &CreateModel{Model: "account", Fields: specsJSON(
			`{"name": "code", "type": "String", "maxLength": 12, "primaryKey": true}`,
			`{"name": "id", "type": "Int", "unique": true}`,
		)}, state: goldenTenant(nil, false, nil)},
		{name: "no_primary_key", op: &CreateModel{Model: "note", Fields: specsJSON(
			`{"name": "body", "type": "Text"}`,
		)}, state: goldenTenant(nil, false, nil)},
		{name: "self_reference", op: &CreateModel{Model: "category", Fields: specsJSON(
			`{"name": "id", "type": "Int"}`,
			`{"name": "parent_id", "type": "Int", "references": {"table": "category", "column": "id", "onDelete": "CASCADE"}}`,
		)}, state: goldenTenant(nil, false, nil)},
		{name: "without_role", op: &CreateModel{Model: "note", Fields: specsJSON(
			`{"name": "id", "type": "Int"}`,
		)}, state: &State{Org: "acme-corp", Schema: "acme-corp", SchemaExists: true}},
		{name: "not_owned", op: &CreateModel{Model: "invoice", Fields: goldenInvoiceMeta().Fields}, state: goldenUnowned(goldenInvoice(true)), wantErr: new(*NotOwnedError)},
		{name: "references_not_owned", op: &CreateModel{Model: "invoice", Fields: specsJSON(
			`{"name": "id", "type": "Int"}`,
			`{"name": "customer_id", "type": "Int", "references": {"table": "customer", "column": "id"}}`,
		)}, state: goldenForeign(goldenTenant(nil, false, nil), "customer"), wantErr: new(*NotOwnedError)},
		{name: "quoted_schema", op: &CreateModel{Model: "invoice", Fields: specsJSON(
			`{"name": "id", "type": "Int"}`,
			`{"name": "customer_id", "type": "Int", "references": {"table": "customer", "column": "id"}}`,
		)}, state: &State{Org: "we-ird", Schema: `we"ird; --`, SchemaExists: true}},
		{name: "in_place", op: &CreateModel{Model: "invoice", Fields: goldenInvoiceMeta().Fields}, state: goldenTenant(goldenInvoiceTable(), true, nil)},
		{name: "in_place_metadata", op: &CreateModel{Model: "invoice", Fields: specsJSON(
			`{"name": "id", "type": "String"}`,
			`{"name": "name", "type": "String", "nullable": false}`,
			`{"name": "amount", "type": "Float", "default": 0.0}`,
			`{"name": "status", "type": "String", "maxLength": 20, "nullable": true, "default": "draft"}`,
			`{"name": "code", "type": "Text", "unique": true}`,
			`{"name": "customer_id", "type": "Int", "references": {"schema": "", "table": "customer", "column": "id", "onDelete": "CASCADE"}}`,
			`{"name": "data", "type": "Json", "default": {"a": 1, "b": [true, null]}}`,
		)}, state: goldenInvoice(true)},
		{name: "conflict", op: &CreateModel{Model: "invoice", Fields: specsJSON(
			`{"name": "id", "type": "Int"}`,
			`{"name": "name", "type": "String", "nullable": false}`,
			`{"name": "amount", "type": "Float", "default": 1}`,
			`{"name": "status", "type": "String", "maxLength": 20, "default": "draft"}`,
			`{"name": "code", "type": "Text"}`,
			`{"name": "customer_id", "type": "Int", "references": {"table": "customer", "column": "id"}}`,
			`{"name": "total", "type": "Float"}`,
		)}, state: goldenInvoice(false), wantErr: new(*ModelConflictError)},

		// add_field, on an empty table and on one with rows
		{name: "string", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "memo", "type": "String"}`)}, state: goldenInvoice(false)},
		{name: "string_max_length_default", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "state", "type": "String", "maxLength": 12, "nullable": false, "default": "new"}`)}, state: goldenInvoice(true)},
		{name: "int_default", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "qty", "type": "Int", "default": -2147483648}`)}, state: goldenInvoice(true)},
		{name: "float_default", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "rate", "type": "Float", "default": 1e-7}`)}, state: goldenInvoice(false)},
		{name: "boolean_default", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "paid", "type": "Boolean", "nullable": false, "default": true}`)}, state: goldenInvoice(true)},
		{name: "datetime_default", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "due", "type": "DateTime", "default": "2024-02-29T23:59:59.999999-07:00"}`)}, state: goldenInvoice(false)},
		{name: "text_default", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "notes", "type": "Text", "default": "it's; DROP TABLE x; --\\'); /* ☃ */"}`)}, state: goldenInvoice(true)},
		{name: "json_default", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "extra", "type": "Json", "default": ["it's", {"k": null}]}`)}, state: goldenInvoice(false)},
		{name: "unique", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "ref", "type": "String", "unique": true}`)}, state: goldenInvoice(false)},
		{name: "unique_rows", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "ref", "type": "String", "unique": true}`)}, state: goldenInvoice(true)},
		{name: "unique_default_rows", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "ref", "type": "String", "unique": true, "default": "x"}`)}, state: goldenInvoice(true), wantErr: new(*UnsafeChangeError)},
		{name: "not_null_rows", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "ref", "type": "Int", "nullable": false}`)}, state: goldenInvoice(true), wantErr: new(*UnsafeChangeError)},
		{name: "not_null", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "ref", "type": "Int", "nullable": false}`)}, state: goldenInvoice(false)},
		{name: "references_cascade", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "contact_id", "type": "Int", "references": {"table": "contact", "column": "id", "onDelete": "CASCADE"}}`)}, state: goldenInvoice(false)},
		{name: "references_set_null", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "contact_id", "type": "Int", "references": {"table": "contact", "column": "id", "onDelete": "SET NULL"}}`)}, state: goldenInvoice(false)},
		{name: "references_restrict", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "contact_id", "type": "Int", "nullable": false, "references": {"table": "contact", "column": "id", "onDelete": "RESTRICT"}}`)}, state: goldenInvoice(false)},
		{name: "references_shared", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "region_id", "type": "Int", "references": {"schema": "shared", "table": "region", "column": "id"}}`)}, state: goldenInvoice(false)},
		{name: "references_rows", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "contact_id", "type": "Int", "default": 1, "references": {"table": "contact", "column": "id", "onDelete": "SET NULL"}}`)}, state: goldenInvoice(true)},
		{name: "unique_references_rows", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "contact_id", "type": "Int", "unique": true, "references": {"table": "contact", "column": "id"}}`)}, state: goldenInvoice(true)},
		{name: "long_names_rows", op: &AddField{Model: longModel, Field: specJSON(`{"name": "` + longField + `", "type": "Int", "unique": true, "references": {"table": "contact", "column": "id"}}`)}, state: goldenTenant(longTable, true, nil)},
		{name: "long_names", op: &AddField{Model: longModel, Field: specJSON(`{"name": "` + longField + `", "type": "Int", "unique": true}`)}, state: goldenTenant(longTable, false, nil)},
		{name: "in_place", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "status", "type": "String", "maxLength": 20, "nullable": true, "default": "draft"}`)}, state: goldenInvoice(true)},
		{name: "in_place_without_metadata", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "data", "type": "Json", "default": {"b": [true, null], "a": 1}}`)}, state: goldenTenant(goldenInvoiceTable(), true, nil)},
		{name: "in_place_stale_metadata", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "total", "type": "Float", "nullable": false}`)},
			state: goldenTenant(&Table{Name: "invoice", Owned: true, Columns: []Column{{Name: "total", Type: "double precision", NotNull: true}}}, false, goldenInvoiceMeta())},
		{name: "finish_without_unique_rows", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "ref", "type": "String", "unique": true}`)},
			state: goldenAddColumn(goldenInvoice(true), Column{Name: "ref", Type: "character varying(100)"})},
		{name: "finish_invalid_index_rows", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "ref", "type": "String", "unique": true}`)},
			state: goldenAddColumn(goldenInvoice(true), Column{Name: "ref", Type: "character varying(100)", UniqueIndex: UniqueIndexInvalid})},
		{name: "finish_unattached_index_rows", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "ref", "type": "String", "unique": true}`)},
			state: goldenAddColumn(goldenInvoice(true), Column{Name: "ref", Type: "character varying(100)", UniqueIndex: UniqueIndexUnattached})},
		{name: "finish_without_references_rows", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "contact_id", "type": "Int", "unique": true, "references": {"table": "contact", "column": "id"}}`)},
			state: goldenAddColumn(goldenInvoice(true), Column{Name: "contact_id", Type: "integer"})},
		{name: "finish_not_valid_references_rows", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "contact_id", "type": "Int", "unique": true, "references": {"table": "contact", "column": "id"}}`)},
			state: goldenAddColumn(goldenInvoice(true), Column{Name: "contact_id", Type: "integer", ReferenceName: "invoice_contact_id_fkey",
				Reference: &Reference{Schema: "acme-corp", Table: "contact", Column: "id", OnDelete: Restrict}})},
		{name: "finish_metadata_differs", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "status", "type": "String", "maxLength": 20, "default": "draft", "unique": true}`)},
			state: goldenInvoice(true), wantErr: new(*FieldConflictError)},
		{name: "conflict_type", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "customer_id", "type": "String", "references": {"table": "customer", "column": "id", "onDelete": "CASCADE"}}`)}, state: goldenInvoice(false), wantErr: new(*FieldConflictError)},
		{name: "conflict_constraints", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "code", "type": "Text", "nullable": false, "default": "x", "references": {"table": "code", "column": "code"}}`)}, state: goldenInvoice(false), wantErr: new(*FieldConflictError)},
		{name: "unknown_model", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "memo", "type": "Text"}`)}, state: goldenTenant(nil, false, goldenInvoiceMeta()), wantErr: new(*UnknownModelError)},
		{name: "not_owned", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "memo", "type": "Text"}`)}, state: goldenUnowned(goldenInvoice(false)), wantErr: new(*NotOwnedError)},
		{name: "references_not_owned", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "contact_id", "type": "Int", "references": {"table": "contact", "column": "id"}}`)},
			state: goldenForeign(goldenInvoice(false), "contact"), wantErr: new(*NotOwnedError)},
		{name: "references_not_owned_elsewhere", op: &AddField{Model: "invoice", Field: specJSON(`{"name": "contact_id", "type": "Int", "references": {"schema": "shared", "table": "contact", "column": "id"}}`)},
			state: goldenForeign(goldenInvoice(false), "contact")},

		// drop_field
		{name: "drop", op: &DropField{Model: "invoice", Field: "customer_id"}, state: goldenInvoice(true)},
		{name: "gone", op: &DropField{Model: "invoice", Field: "memo"}, state: goldenInvoice(true)},
		{name: "gone_from_table", op: &DropField{Model: "invoice", Field: "status"},
			state: goldenTenant(&Table{Name: "invoice", Owned: true, Columns: goldenInvoiceTable().Columns[:3]}, false, goldenInvoiceMeta())},
		{name: "primary_key", op: &DropField{Model: "invoice", Field: "id"}, state: goldenInvoice(false), wantErr: new(*InvalidSpecError)},
		{name: "unknown_model", op: &DropField{Model: "invoice", Field: "memo"}, state: goldenTenant(nil, false, nil), wantErr: new(*UnknownModelError)},
		{name: "not_owned", op: &DropField{Model: "invoice", Field: "status"}, state: goldenUnowned(goldenInvoice(false)), wantErr: new(*NotOwnedError)},

		// drop_model
		{name: "drop", op: &DropModel{Model: "invoice"}, state: goldenInvoice(true)},
		{name: "gone_from_table", op: &DropModel{Model: "invoice"}, state: goldenTenant(nil, false, goldenInvoiceMeta())},
		{name: "gone", op: &DropModel{Model: "invoice"}, state: goldenTenant(nil, false, nil)},
		{name: "not_owned", op: &DropModel{Model: "invoice"}, state: goldenUnowned(goldenInvoice(false)), wantErr: new(*NotOwnedError)},

		// rename_field
		{name: "rename", op: &RenameField{Model: "invoice", From: "status", To: "state"}, state: goldenInvoice(true)},
		{name: "renamed", op: &RenameField{Model: "invoice", From: "state", To: "status"}, state: goldenInvoice(true)},
		{name: "renamed_in_table", op: &RenameField{Model: "invoice", From: "status", To: "state"},
			state: goldenRename(goldenInvoice(false), "status", "state")},
		{name: "both_exist", op: &RenameField{Model: "invoice", From: "status", To: "code"}, state: goldenInvoice(false), wantErr: new(*FieldConflictError)},
		{name: "neither_exists", op: &RenameField{Model: "invoice", From: "memo", To: "note"}, state: goldenInvoice(false), wantErr: new(*UnknownFieldError)},
		{name: "unknown_model", op: &RenameField{Model: "invoice", From: "memo", To: "note"}, state: goldenTenant(nil, false, nil), wantErr: new(*UnknownModelError)},
		{name: "not_owned", op: &RenameField{Model: "invoice", From: "status", To: "state"}, state: goldenUnowned(goldenInvoice(false)), wantErr: new(*NotOwnedError)},

		// alter_field
		{name: "drop_not_null", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "name", "type": "String"}`)}, state: goldenInvoice(true)},
		{name: "set_not_null_rows", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "amount", "type": "Float", "nullable": false, "default": 0}`)}, state: goldenInvoice(true)},
		{name: "set_not_null_without_default_rows", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "customer_id", "type": "Int", "nullable": false, "references": {"table": "customer", "column": "id", "onDelete": "CASCADE"}}`)}, state: goldenInvoice(true), wantErr: new(*UnsafeChangeError)},
		{name: "set_not_null_without_default", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "customer_id", "type": "Int", "nullable": false, "references": {"table": "customer", "column": "id", "onDelete": "CASCADE"}}`)}, state: goldenInvoice(false)},
		{name: "set_default", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "customer_id", "type": "Int", "default": 7, "references": {"table": "customer", "column": "id", "onDelete": "CASCADE"}}`)}, state: goldenInvoice(true)},
		{name: "change_default", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "status", "type": "String", "maxLength": 20, "default": "x'); DROP --\\"}`)}, state: goldenInvoice(true)},
		{name: "drop_default", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "data", "type": "Json"}`)}, state: goldenInvoice(true)},
		{name: "replace_function_default", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "id", "type": "String", "primaryKey": true, "default": "x"}`)},
			state: goldenColumn(goldenInvoice(false), Column{Name: "id", Type: "character varying(100)", NotNull: true, PrimaryKey: true, Default: "(gen_random_uuid())::character varying"})},
		{name: "unique_on", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "status", "type": "String", "maxLength": 20, "default": "draft", "unique": true}`)}, state: goldenInvoice(false)},
		{name: "unique_on_rows", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "status", "type": "String", "maxLength": 20, "default": "draft", "unique": true}`)}, state: goldenInvoice(true)},
		{name: "unique_on_invalid_index_rows", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "status", "type": "String", "maxLength": 20, "default": "draft", "unique": true}`)},
			state: goldenColumn(goldenInvoice(true), Column{Name: "status", Type: "character varying(20)", Default: "'draft'::character varying", UniqueIndex: UniqueIndexInvalid})},
		{name: "unique_on_invalid_index", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "status", "type": "String", "maxLength": 20, "default": "draft", "unique": true}`)},
			state: goldenColumn(goldenInvoice(false), Column{Name: "status", Type: "character varying(20)", Default: "'draft'::character varying", UniqueIndex: UniqueIndexInvalid})},
		{name: "unique_on_unattached_index_rows", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "status", "type": "String", "maxLength": 20, "default": "draft", "unique": true}`)},
			state: goldenColumn(goldenInvoice(true), Column{Name: "status", Type: "character varying(20)", Default: "'draft'::character varying", UniqueIndex: UniqueIndexUnattached})},
		{name: "references_not_valid_rows", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "customer_id", "type": "Int", "references": {"table": "customer", "column": "id", "onDelete": "CASCADE"}}`)},
			state: goldenColumn(goldenInvoice(true), Column{Name: "customer_id", Type: "integer", ReferenceName: "invoice_customer_id_fkey",
				Reference: &Reference{Schema: "acme-corp", Table: "customer", Column: "id", OnDelete: Cascade}})},
		{name: "unique_off", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "code", "type": "Text"}`)}, state: goldenInvoice(true)},
		{name: "references_add", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "status", "type": "String", "maxLength": 20, "default": "draft", "references": {"table": "status", "column": "name"}}`)}, state: goldenInvoice(false)},
		{name: "references_add_rows", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "status", "type": "String", "maxLength": 20, "default": "draft", "references": {"table": "status", "column": "name"}}`)}, state: goldenInvoice(true)},
		{name: "references_change", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "customer_id", "type": "Int", "references": {"table": "customer", "column": "id", "onDelete": "RESTRICT"}}`)}, state: goldenInvoice(false)},
		{name: "references_change_rows", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "customer_id", "type": "Int", "references": {"schema": "shared", "table": "customer", "column": "id", "onDelete": "SET NULL"}}`)}, state: goldenInvoice(true)},
		{name: "references_change_not_valid_rows", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "customer_id", "type": "Int", "references": {"table": "customer", "column": "id"}}`)},
			state: goldenColumn(goldenInvoice(true), Column{Name: "customer_id", Type: "integer", ReferenceName: "fk legacy", Reference: &Reference{Schema: "acme-corp", Table: "client", Column: "id", OnDelete: "NO ACTION"}})},
		{name: "references_remove", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "customer_id", "type": "Int"}`)}, state: goldenInvoice(true)},
		{name: "everything_rows", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "code", "type": "Text", "nullable": false, "default": "none", "references": {"table": "code", "column": "code"}}`)},
			state: goldenColumn(goldenInvoice(true), Column{Name: "code", Type: "text", Default: "'x'::text"})},
		{name: "everything_rows_unique", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "name", "type": "String", "unique": true, "default": "", "references": {"table": "person", "column": "name", "onDelete": "CASCADE"}}`)}, state: goldenInvoice(true)},
		{name: "in_place", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "data", "type": "Json", "nullable": true, "default": {"b": [true, null], "a": 1e0}}`)}, state: goldenInvoice(true)},
		{name: "in_place_without_metadata", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "customer_id", "type": "Int", "references": {"table": "customer", "column": "id", "onDelete": "CASCADE"}}`)}, state: goldenTenant(goldenInvoiceTable(), false, nil)},
		{name: "type_change", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "status", "type": "Text", "default": "draft"}`)}, state: goldenInvoice(false), wantErr: new(*InvalidSpecError)},
		{name: "max_length_change", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "status", "type": "String", "default": "draft"}`)}, state: goldenInvoice(false), wantErr: new(*InvalidSpecError)},
		{name: "primary_key_change", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "id", "type": "String"}`)}, state: goldenInvoice(false), wantErr: new(*InvalidSpecError)},
		{name: "unknown_field", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "memo", "type": "Text"}`)}, state: goldenInvoice(false), wantErr: new(*UnknownFieldError)},
		{name: "unknown_model", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "memo", "type": "Text"}`)}, state: goldenTenant(nil, false, nil), wantErr: new(*UnknownModelError)},
		{name: "not_owned", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "code", "type": "Text"}`)}, state: goldenUnowned(goldenInvoice(true)), wantErr: new(*NotOwnedError)},
		{name: "references_not_owned", op: &AlterField{Model: "invoice", Field: specJSON(`{"name": "customer_id", "type": "Int", "references": {"table": "client", "column": "id"}}`)},
			state: goldenForeign(goldenInvoice(true), "client"), wantErr: new(*NotOwnedError)},

		// create_tenant and drop_tenant
		{name: "create", op: &CreateTenant{Org: "acme-corp"}, state: &State{Org: "acme-corp", Schema: "acme-corp"}},
		{name: "registered_schema", op: &CreateTenant{Org: "0day_co", Schema: "other"}, state: &State{Org: "0day_co", Schema: "tenant_0day", Registered: true}},
		{name: "chosen_schema", op: &CreateTenant{Org: "0day_co", Schema: "tenant_0day"}, state: &State{Org: "0day_co", Schema: "tenant_0day"}},
		{name: "schema_exists", op: &CreateTenant{Org: "acme-corp"},
			state: &State{Org: "acme-corp", Schema: "acme-corp", SchemaExists: true, Grants: Grants{Ungranted: []string{"customer", "invoice"}}}},
		{name: "role_exists", op: &CreateTenant{Org: "acme-corp"}, state: &State{Org: "acme-corp", Schema: "acme-corp", Role: goldenRole()}},
		{name: "grants_missing", op: &CreateTenant{Org: "acme-corp"},
			state: &State{Org: "acme-corp", Schema: "acme-corp", SchemaExists: true, Registered: true, Role: goldenRole(),
				Grants: Grants{Usage: true, DefaultTables: true, Ungranted: []string{"invoice"}}}},
		{name: "in_place", op: &CreateTenant{Org: "acme-corp"},
			state: &State{Org: "acme-corp", Schema: "acme-corp", SchemaExists: true, Registered: true, Role: goldenRole(), Grants: goldenGranted}},
		{name: "in_place_unregistered", op: &CreateTenant{Org: "acme-corp"},
			state: &State{Org: "acme-corp", Schema: "acme-corp", SchemaExists: true, Role: goldenRole(), Grants: goldenGranted}},
		{name: "no_create", op: &CreateTenant{Org: "acme-corp", NoCreate: true}, state: &State{Org: "acme-corp", Schema: "acme-corp"}},
		{name: "no_create_revoke", op: &CreateTenant{Org: "acme-corp", NoCreate: true},
			state: &State{Org: "acme-corp", Schema: "acme-corp", SchemaExists: true, Registered: true, Role: goldenRole(), Grants: goldenGranted}},
		{name: "login", op: &CreateTenant{Org: "acme-corp", Login: true}, state: &State{Org: "acme-corp", Schema: "acme-corp"}},
		{name: "login_exists", op: &CreateTenant{Org: "acme-corp", Login: true},
			state: &State{Org: "acme-corp", Schema: "acme-corp", SchemaExists: true, Registered: true, Role: goldenRole(), Login: goldenLogin(), Grants: goldenGranted}},
		{name: "role_engine", op: &CreateTenant{Org: "acme-corp", Login: true},
			state: goldenRoles(&Role{Name: "acme-corp", CanLogin: true, Powers: []string{"CREATEROLE"}, Engine: true}, nil), wantErr: new(*UnsafeRoleError)},
		{name: "role_predefined", op: &CreateTenant{Org: "acme-corp"},
			state: goldenRoles(&Role{Name: "acme-corp", Predefined: true}, nil), wantErr: new(*UnsafeRoleError)},
		{name: "role_powers", op: &CreateTenant{Org: "acme-corp"},
			state: goldenRoles(&Role{Name: "acme-corp", Powers: []string{"CREATEDB", "BYPASSRLS"}}, nil), wantErr: new(*UnsafeRoleError)},
		{name: "role_login", op: &CreateTenant{Org: "acme-corp"},
			state: goldenRoles(&Role{Name: "acme-corp", CanLogin: true}, nil), wantErr: new(*UnsafeRoleError)},
		{name: "role_member", op: &CreateTenant{Org: "acme-corp"},
			state: goldenRoles(&Role{Name: "acme-corp", MemberOf: []string{"staff", "writers"}}, nil), wantErr: new(*UnsafeRoleError)},
		{name: "role_holds_elsewhere", op: &CreateTenant{Org: "acme-corp"},
			state: goldenRoles(&Role{Name: "acme-corp", Holds: []string{"table public.ledger"}}, nil), wantErr: new(*UnsafeRoleError)},
		{name: "login_engine", op: &CreateTenant{Org: "acme-corp", Login: true},
			state: goldenRoles(goldenRole(), &Role{Name: "acme-corp.login", CanLogin: true, Engine: true, MemberOf: []string{"acme-corp"}}), wantErr: new(*UnsafeRoleError)},
		{name: "login_powers", op: &CreateTenant{Org: "acme-corp", Login: true},
			state: goldenRoles(goldenRole(), &Role{Name: "acme-corp.login", CanLogin: true, Powers: []string{"SUPERUSER"}, MemberOf: []string{"acme-corp"}}), wantErr: new(*UnsafeRoleError)},
		{name: "login_cannot_log_in", op: &CreateTenant{Org: "acme-corp", Login: true},
			state: goldenRoles(goldenRole(), &Role{Name: "acme-corp.login", MemberOf: []string{"acme-corp"}}), wantErr: new(*UnsafeRoleError)},
		{name: "login_not_member", op: &CreateTenant{Org: "acme-corp", Login: true},
			state: goldenRoles(goldenRole(), &Role{Name: "acme-corp.login", CanLogin: true}), wantErr: new(*UnsafeRoleError)},
		{name: "login_without_role", op: &CreateTenant{Org: "acme-corp", Login: true},
			state: goldenRoles(nil, &Role{Name: "acme-corp.login", CanLogin: true, MemberOf: []string{"globex"}}), wantErr: new(*UnsafeRoleError)},
		{name: "login_also_member", op: &CreateTenant{Org: "acme-corp", Login: true},
			state: goldenRoles(goldenRole(), &Role{Name: "acme-corp.login", CanLogin: true, MemberOf: []string{"acme-corp", "globex"}}), wantErr: new(*UnsafeRoleError)},
		{name: "login_not_asked", op: &CreateTenant{Org: "acme-corp"},
			state: goldenRoles(goldenRole(), &Role{Name: "acme-corp.login", CanLogin: true, Powers: []string{"SUPERUSER"}})},
		{name: "drop", op: &DropTenant{Org: "acme-corp"}, state: &State{Org: "acme-corp", Schema: "acme-corp", SchemaExists: true, Registered: true, Role: goldenRole(), Login: goldenLogin()}},
		{name: "drop_engine_schema", op: &DropTenant{Org: "pgmigrate"},
			state: &State{Org: "pgmigrate", Schema: "pgmigrate", SchemaExists: true}, wantErr: new(*InvalidSpecError)},
		{name: "drop_engine_role", op: &DropTenant{Org: "acme-corp"},
			state: goldenRoles(&Role{Name: "acme-corp", CanLogin: true, Powers: []string{"CREATEROLE"}, Engine: true}, nil), wantErr: new(*UnsafeRoleError)},
		{name: "drop_login_role", op: &DropTenant{Org: "acme-corp"},
			state: goldenRoles(&Role{Name: "acme-corp", CanLogin: true}, nil), wantErr: new(*UnsafeRoleError)},
		{name: "drop_shared_login", op: &DropTenant{Org: "acme-corp"},
			state: goldenRoles(goldenRole(), &Role{Name: "acme-corp.login", CanLogin: true, MemberOf: []string{"acme-corp", "globex"}}), wantErr: new(*UnsafeRoleError)},
		{name: "drop_without_role", op: &DropTenant{Org: "acme-corp"}, state: &State{Org: "acme-corp", Schema: "acme-corp", SchemaExists: true}},
		{name: "roles_left", op: &DropTenant{Org: "acme-corp"}, state: &State{Org: "acme-corp", Schema: "acme-corp", Role: goldenRole()}},
		{name: "gone", op: &DropTenant{Org: "acme-corp"}, state: &State{Org: "acme-corp", Schema: "acme-corp"}},

		// adopt_model
		{name: "not_owned", op: &AdoptModel{Model: "customers"}, state: goldenUnowned(goldenCustomers(false))},
		{name: "without_role", op: &AdoptModel{Model: "customers"}, state: func() *State { s := goldenCustomers(false); s.Role = nil; return s }()},
		{name: "ungranted", op: &AdoptModel{Model: "customers"},
			state: func() *State { s := goldenCustomers(true); s.Grants.Ungranted = []string{"customers"}; return s }()},
		{name: "metadata_only", op: &AdoptModel{Model: "customers"}, state: goldenCustomers(true)},
		{name: "in_place", op: &AdoptModel{Model: "invoice"}, state: goldenInvoice(true)},
		{name: "stale_metadata", op: &AdoptModel{Model: "invoice"}, state: func() *State {
			s := goldenInvoice(true)
			s.Meta.Fields = s.Meta.Fields[:3]
			return s
		}()},
		{name: "every_type", op: &AdoptModel{Model: "legacy"}, state: goldenLegacy()},
		{name: "unsupported_type", op: &AdoptModel{Model: "legacy"},
			state: goldenColumn(goldenLegacy(), Column{Name: "rate", Type: "numeric(10,2)"}), wantErr: new(*UnsupportedColumnError)},
		{name: "varchar_without_length", op: &AdoptModel{Model: "legacy"},
			state: goldenColumn(goldenLegacy(), Column{Name: "notes", Type: "character varying"}), wantErr: new(*UnsupportedColumnError)},
		{name: "function_default", op: &AdoptModel{Model: "legacy"},
			state: goldenColumn(goldenLegacy(), Column{Name: "due", Type: "timestamp with time zone", Default: "now()"}), wantErr: new(*UnsupportedColumnError)},
		{name: "no_action_reference", op: &AdoptModel{Model: "legacy"},
			state: goldenColumn(goldenLegacy(), Column{Name: "customer_id", Type: "integer", ReferenceName: "legacy_customer_id_fkey", ReferenceValid: true,
				Reference: &Reference{Schema: "acme-corp", Table: "customer", Column: "id", OnDelete: "NO ACTION"}}), wantErr: new(*UnsupportedColumnError)},
		{name: "reserved_name", op: &AdoptModel{Model: "legacy"},
			state: goldenRename(goldenLegacy(), "status", "order"), wantErr: new(*UnsupportedColumnError)},
		{name: "unknown_model", op: &AdoptModel{Model: "customers"}, state: goldenTenant(nil, false, nil), wantErr: new(*UnknownModelError)},
		{name: "tenant_code", op: &AdoptModel{Model: "customers"}, state: func() *State {
			s := goldenUnowned(goldenCustomers(false))
			s.Table.Unsafe = []string{"trigger audit", "row-level security", "policy mine", "index customers_lower on an expression",
				"foreign key customers_region_fkey to table shared.region of another owner"}
			return s
		}(), wantErr: new(*UnsupportedTableError)},
		{name: "tenant_code_owned", op: &AdoptModel{Model: "customers"}, state: func() *State {
			s := goldenCustomers(true)
			s.Table.Unsafe = []string{"check constraint customers_name_check"}
			return s
		}(), wantErr: new(*UnsupportedTableError)},
		{name: "tenant_code_unsupported_column", op: &AdoptModel{Model: "legacy"}, state: func() *State {
			s := goldenColumn(goldenLegacy(), Column{Name: "rate", Type: "numeric(10,2)"})
			s.Table.Unsafe = []string{"generated column rate"}
			return s
		}(), wantErr: new(*UnsupportedTableError)},
	}
}

func TestPlanGolden(t *testing.T) {
	seen := make(map[string]bool)
	for _, c := range goldenCases() {
		path := filepath.Join("testdata", "plans", c.op.Kind(), c.name+".sql")
		if seen[path] {
			t.Fatalf("two cases write %s", path)
		}
		seen[path] = true
		t.Run(c.op.Kind()+"/"+c.name, func(t *testing.T) {
			if err := c.op.Validate(&planOptions); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			before := stateJSON(t, c.state)
			p, err := c.op.Plan(c.state)
			if after := stateJSON(t, c.state); after != before {
				t.Errorf("Plan changed the state:\n%s\nto\n%s", before, after)
			}
			switch {
			case c.wantErr == nil && err != nil:
				t.Errorf("Plan: %v", err)
			case c.wantErr != nil && !errors.As(err, c.wantErr):
				t.Errorf("Plan: got error %v, want a %T", err, c.wantErr)
			}
			checkGolden(t, path, renderPlan(c.state, p, err))
		})
	}
	t.Run("no stale files", func(t *testing.T) {
		files, _ := filepath.Glob(filepath.Join("testdata", "plans", "*", "*.sql"))
		for _, f := range files {
			if !seen[f] {
				t.Errorf("%s belongs to no case", f)
			}
		}
	})
}

func stateJSON(t *testing.T, s *State) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("plan differs from %s (run with -update to accept it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// renderPlan writes a plan, or the error planning it, as an SQL script
// whose comments say how the runner is to execute it, how the metadata
// changes (the fields set, added or changed, and removed), whether the
// operation is in place, and what login role it returns.
func renderPlan(s *State, p *Plan, err error) string {
	var b strings.Builder
	if err != nil {
		fmt.Fprintf(&b, "-- error %s: %v\n", sqlState(err), err)
		var d interface{ Detail() string }
		if errors.As(err, &d) {
			fmt.Fprintf(&b, "-- detail: %s\n", d.Detail())
		}
		var h interface{ Hint() string }
		if errors.As(err, &h) {
			fmt.Fprintf(&b, "-- hint: %s\n", h.Hint())
		}
		return b.String()
	}
	for i, ph := range p.Phases {
		kind := "transaction"
		if ph.Online {
			kind = "online"
		}
		fmt.Fprintf(&b, "-- phase %d: %s\n", i+1, kind)
		for j, sql := range ph.Statements {
			b.WriteString(sql + ";\n")
			if _, ok := ph.Hidden[j]; ok {
				b.WriteString("-- runs with the secret in place of " + redacted + "\n")
			}
		}
		for _, sql := range ph.Undo {
			b.WriteString("-- undo: " + sql + ";\n")
		}
	}
	if len(p.Phases) == 0 {
		b.WriteString("-- no statements\n")
	}
	switch {
	case p.DropModel:
		b.WriteString("-- metadata: drop the model\n")
	case p.Model == nil:
		b.WriteString("-- metadata: left alone\n")
	case reflect.DeepEqual(p.Model, s.Meta):
		b.WriteString("-- metadata: unchanged\n")
	default:
		fmt.Fprintf(&b, "-- metadata: model %s\n", p.Model.Name)
		for _, f := range p.Model.Fields {
			if old := s.Meta.Field(f.Name); old == nil || !reflect.DeepEqual(*old, f) {
				js, _ := json.Marshal(f)
				fmt.Fprintf(&b, "--   set %s\n", js)
			}
		}
		if s.Meta != nil {
			for _, f := range s.Meta.Fields {
				if p.Model.Field(f.Name) == nil {
					fmt.Fprintf(&b, "--   remove %s\n", f.Name)
				}
			}
		}
	}
	if p.AddTenant {
		b.WriteString("-- tenant: register\n")
	}
	if p.DropTenant {
		b.WriteString("-- tenant: unregister\n")
	}
	if unchanged(p, s) {
		b.WriteString("-- in place: unchanged\n")
	}
	if p.Login != "" {
		fmt.Fprintf(&b, "-- login role: %s", p.Login)
		if p.Password != "" {
			b.WriteString(", its password returned")
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestPlanSameDefault(t *testing.T) {
	tests := []struct {
		field string
		live  string
		want  bool
	}{
		{`{"name": "f", "type": "String"}`, "", true},
		{`{"name": "f", "type": "String", "default": null}`, "", true},
		{`{"name": "f", "type": "String"}`, "'draft'::character varying", false},
		{`{"name": "f", "type": "String", "default": "draft"}`, "", false},
		{`{"name": "f", "type": "String", "default": "draft"}`, "'draft'::character varying", true},
		{`{"name": "f", "type": "String", "default": "draft"}`, "'draft'::character varying(100)", true},
		{`{"name": "f", "type": "String", "default": "draft"}`, "'Draft'::character varying", false},
		{`{"name": "f", "type": "String", "default": "it's; --"}`, "'it''s; --'::character varying", true},
		{`{"name": "f", "type": "String", "default": "it's"}`, "'it''s", false},
		{`{"name": "f", "type": "String", "default": "a"}`, "'a'::text || 'b'::text", false},
		{`{"name": "f", "type": "String", "default": "a"}`, "'a'::text COLLATE \"C\"", false},
		{`{"name": "f", "type": "Text", "default": "x"}`, "'x'::text", true},
		{`{"name": "f", "type": "Text", "default": "a\\b"}`, `'a\b'::text`, true},
		{`{"name": "f", "type": "Text", "default": ""}`, "''::text", true},
		{`{"name": "f", "type": "Text", "default": "now()"}`, "now()", false},
		{`{"name": "f", "type": "Int", "default": 42}`, "42", true},
		{`{"name": "f", "type": "Int", "default": 42}`, "43", false},
		{`{"name": "f", "type": "Int", "default": -5}`, "'-5'::integer", true},
		{`{"name": "f", "type": "Int", "default": 1}`, "nextval('invoice_f_seq'::regclass)", false},
		{`{"name": "f", "type": "Float", "default": 1.5}`, "1.5", true},
		{`{"name": "f", "type": "Float", "default": 1.50}`, "'1.5'::double precision", true},
		{`{"name": "f", "type": "Float", "default": 0}`, "'0'::double precision", true},
		{`{"name": "f", "type": "Float", "default": -1.5}`, "'-1.5'::numeric::double precision", true},
		{`{"name": "f", "type": "Float", "default": 1e20}`, "'1e+20'::double precision", true},
		{`{"name": "f", "type": "Float", "default": 0.1}`, "0.2", false},
		{`{"name": "f", "type": "Boolean", "default": true}`, "true", true},
		{`{"name": "f", "type": "Boolean", "default": false}`, "true", false},
		{`{"name": "f", "type": "DateTime", "default": "2024-01-01T00:00:00Z"}`, "'2024-01-01 00:00:00+00'::timestamp with time zone", true},
		{`{"name": "f", "type": "DateTime", "default": "2024-01-01T05:30:00.25+05:30"}`, "'2024-01-01 00:00:00.25+00'::timestamp with time zone", true},
		{`{"name": "f", "type": "DateTime", "default": "2024-01-01T00:00:00Z"}`, "'2024-01-01 05:30:00+05:30'::timestamp with time zone", true},
		{`{"name": "f", "type": "DateTime", "default": "2024-01-01T00:00:00Z"}`, "'2023-12-31 17:00:00-07'::timestamp with time zone", true},
		{`{"name": "f", "type": "DateTime", "default": "1900-01-01T00:00:00Z"}`, "'1900-01-01 05:53:28+05:53:28'::timestamp with time zone", true},
		{`{"name": "f", "type": "DateTime", "default": "2024-01-01T00:00:00Z"}`, "'2024-01-01 00:00:01+00'::timestamp with time zone", false},
		{`{"name": "f", "type": "DateTime", "default": "2024-01-01T00:00:00Z"}`, "now()", false},
		{`{"name": "f", "type": "DateTime", "default": "2024-01-01T00:00:00Z"}`, "CURRENT_TIMESTAMP", false},
		{`{"name": "f", "type": "Json", "default": {"a": 1}}`, `'{"a": 1}'::jsonb`, true},
		{`{"name": "f", "type": "Json", "default": {"b": [1, "it's"], "a": 1.0}}`, `'{"a": 1, "b": [1, "it''s"]}'::jsonb`, true},
		{`{"name": "f", "type": "Json", "default": {"a": 1}}`, `'{"a": 2}'::jsonb`, false},
		{`{"name": "f", "type": "Json", "default": "x"}`, `'"x"'::jsonb`, true},
		{`{"name": "f", "type": "Json", "default": {"a": 1}}`, `'{"a": 1'::jsonb`, false},
	}
	for _, tt := range tests {
		if got := sameDefault(tt.live, specJSON(tt.field)); got != tt.want {
			t.Errorf("sameDefault(%q, %s) = %t, want %t", tt.live, tt.field, got, tt.want)
		}
	}
}

func TestPlanObjectName(t *testing.T) {
	tests := []struct{ table, column, label, want string }{
		{"invoice", "code", "key", "invoice_code_key"},
		{"invoice", "customer_id", "fkey", "invoice_customer_id_fkey"},
		{strings.Repeat("t", 63), "c", "key", strings.Repeat("t", 57) + "_c_key"},
		{"t", strings.Repeat("c", 63), "fkey", "t_" + strings.Repeat("c", 56) + "_fkey"},
		{strings.Repeat("t", 63), strings.Repeat("c", 63), "fkey", strings.Repeat("t", 29) + "_" + strings.Repeat("c", 28) + "_fkey"},
		{strings.Repeat("t", 40), strings.Repeat("c", 20), "key", strings.Repeat("t", 38) + "_" + strings.Repeat("c", 20) + "_key"},
	}
	for _, tt := range tests {
		got := objectName(tt.table, tt.column, tt.label)
		if got != tt.want {
			t.Errorf("objectName(%q, %q, %q) = %q, want %q", tt.table, tt.column, tt.label, got, tt.want)
		}
		if len(got) > maxIdentifierLength {
			t.Errorf("objectName(%q, %q, %q) is %d bytes", tt.table, tt.column, tt.label, len(got))
		}
	}
}

// TestPlanPasswordVerifier checks the SCRAM-SHA-256 verifier against one
// computed independently (with Python's hashlib and hmac) for RFC 7677's
// example password and salt.
func TestPlanPasswordVerifier(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	got, err := scramVerifier("pencil", salt, 4096)
	want := "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
	if err != nil || got != want {
		t.Errorf("verifier %q (%v), want %q", got, err, want)
	}
}

// TestPlanLoginSecret checks that a login role's password runs only in the
// hidden form of its statement, as its verifier, and is what the plan
// returns.
func TestPlanLoginSecret(t *testing.T) {
	op := &CreateTenant{Org: "acme-corp", Login: true}
	if err := op.Validate(&planOptions); err != nil {
		t.Fatal(err)
	}
	p, err := op.Plan(&State{Org: "acme-corp", Schema: "acme-corp"})
	if err != nil {
		t.Fatal(err)
	}
	ph := p.Phases[0]
	last := len(ph.Statements) - 1
	shown, run := ph.Statements[last], ph.run(last)
	if p.Password == "" || !strings.HasSuffix(shown, "PASSWORD "+redacted) || run != strings.TrimSuffix(shown, redacted)+quoteLiteral(op.secret.verifier) {
		t.Errorf("password %q, statement shown %q, run %q", p.Password, shown, run)
	}
	if !strings.HasPrefix(op.secret.verifier, "SCRAM-SHA-256$4096:") || strings.Contains(run, p.Password) {
		t.Errorf("verifier %q of password %q", op.secret.verifier, p.Password)
	}
	long := &CreateTenant{Org: strings.Repeat("a", 58), Login: true}
	if err := long.Validate(&planOptions); sqlState(err) != "22023" {
		t.Errorf("a login role name over 63 bytes: %v, want 22023", err)
	}
}
