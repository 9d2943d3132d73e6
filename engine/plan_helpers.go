package engine

import (
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// table is a tenant table as the generated SQL names it.
type table struct{ schema, name string }

func (t table) String() string { return qualified(t.schema, t.name) }

// alter renders ALTER TABLE t action.
func (t table) alter(action string) string { return "ALTER TABLE " + t.String() + " " + action }

func (t table) addColumn(f FieldSpec) string { return t.alter("ADD COLUMN " + columnDef(t.schema, f)) }

func (t table) alterColumn(column, action string) string {
	return t.alter("ALTER COLUMN " + ident(column) + " " + action)
}

func (t table) dropConstraint(name string) string { return t.alter("DROP CONSTRAINT " + ident(name)) }

func (t table) dropConstraintIfExists(name string) string {
	return t.alter("DROP CONSTRAINT IF EXISTS " + ident(name))
}

// addUnique adds a unique constraint, building its index under a lock that
// blocks writes: for tables without rows.
func (t table) addUnique(column string) string {
	return t.alter("ADD CONSTRAINT " + ident(uniqueName(t.name, column)) + " UNIQUE (" + ident(column) + ")")
}

// uniquePhases add a unique constraint to a table with rows without
// blocking writes while the index is built: the index is built
// concurrently, then the constraint takes it over. index is the state of
// an index of the constraint's name that a stopped run left
// (Column.UniqueIndex): an invalid one is dropped first, an unattached
// valid one is only attached.
func (t table) uniquePhases(column, index string) []Phase {
	name := uniqueName(t.name, column)
	drop := "DROP INDEX CONCURRENTLY IF EXISTS " + qualified(t.schema, name)
	attach := Phase{
		Statements: []string{t.alter("ADD CONSTRAINT " + ident(name) + " UNIQUE USING INDEX " + ident(name))},
		Undo:       []string{t.dropConstraintIfExists(name)},
	}
	if index == UniqueIndexUnattached {
		return []Phase{attach}
	}
	var phases []Phase
	if index == UniqueIndexInvalid {
		phases = append(phases, Phase{Online: true, Statements: []string{drop}})
	}
	return append(phases, Phase{
		Online:     true,
		Statements: []string{"CREATE UNIQUE INDEX CONCURRENTLY " + ident(name) + " ON " + t.String() + " (" + ident(column) + ")"},
		Undo:       []string{drop},
	}, attach)
}

// addForeignKey adds the foreign key name on column; notValid skips
// checking the existing rows.
func (t table) addForeignKey(name, column string, r *Reference, notValid bool) string {
	sql := t.alter("ADD CONSTRAINT " + ident(name) + " FOREIGN KEY (" + ident(column) + ") REFERENCES " + referenceTarget(t.schema, r))
	if notValid {
		sql += " NOT VALID"
	}
	return sql
}

// foreignKeyPhases add a foreign key to a table with rows: NOT VALID first,
// which holds its locks only briefly, then validated in a transaction of
// its own, which scans the rows without blocking writes.
func (t table) foreignKeyPhases(column string, r *Reference) []Phase {
	name := foreignKeyName(t.name, column)
	return []Phase{
		{
			Statements: []string{t.addForeignKey(name, column, r, true)},
			Undo:       []string{t.dropConstraintIfExists(name)},
		},
		t.validatePhase(name),
	}
}

// validatePhase validates the NOT VALID constraint name in a transaction
// of its own, which scans the rows without blocking writes.
func (t table) validatePhase(name string) Phase {
	return Phase{Statements: []string{t.alter("VALIDATE CONSTRAINT " + ident(name))}}
}

// unvalidatedForeignKey reports whether c's foreign key is the one f asks
// for, under the engine's name, but NOT VALID: a run stopped before
// validating it.
func unvalidatedForeignKey(schema, model string, c *Column, f FieldSpec) bool {
	return c.Reference != nil && !c.ReferenceValid && sameReference(schema, c, f) &&
		c.ReferenceName == foreignKeyName(model, c.Name)
}

// unfinishedField reports whether the live column c could be f's column as
// a run of add_field or alter_field that stopped between phases leaves
// it: as f asks in type, primary key, nullability and default, and, of
// the unique constraint and foreign key that f asks for, each either in
// place or missing or unfinished (no constraint, an engine-named index
// left invalid or unattached, a foreign key NOT VALID), with no unique
// constraint or foreign key that f does not ask for.
func unfinishedField(schema string, c *Column, f FieldSpec) bool {
	return c.Type == f.ColumnType() && c.PrimaryKey == f.PrimaryKey &&
		c.NotNull != f.IsNullable() && sameDefault(c.Default, f) &&
		(c.Unique == "" || wantsUnique(f)) &&
		(c.Reference == nil || sameReference(schema, c, f))
}

// maxIdentifierLength is PostgreSQL's limit on names, in bytes.
const maxIdentifierLength = 63

// uniqueName is PostgreSQL's default name of a unique constraint.
func uniqueName(table, column string) string { return objectName(table, column, "key") }

// foreignKeyName is PostgreSQL's default name of a foreign key.
func foreignKeyName(table, column string) string { return objectName(table, column, "fkey") }

// objectName joins table_column_label as PostgreSQL names constraints,
// shortening the longer of table and column, one byte at a time, until the
// name fits in 63 bytes. Model and field names are ASCII, so bytes are
// characters.
func objectName(table, column, label string) string {
	avail := maxIdentifierLength - len(label) - 2
	t, c := len(table), len(column)
	for t+c > avail {
		if t > c {
			t--
		} else {
			c--
		}
	}
	return table[:t] + "_" + column[:c] + "_" + label
}

// columnDiff lists how the live column differs from f, one
// "what: live X, asked Y" item per difference; none means it matches.
func columnDiff(schema string, c *Column, f FieldSpec) []string {
	var diff []string
	add := func(what, live, asked string) {
		diff = append(diff, what+": live "+live+", asked "+asked)
	}
	if c.Type != f.ColumnType() {
		add("type", c.Type, f.ColumnType())
	}
	if c.PrimaryKey != f.PrimaryKey {
		add("primary key", strconv.FormatBool(c.PrimaryKey), strconv.FormatBool(f.PrimaryKey))
	}
	if c.NotNull == f.IsNullable() {
		add("nullable", strconv.FormatBool(!c.NotNull), strconv.FormatBool(f.IsNullable()))
	}
	if !sameDefault(c.Default, f) {
		add("default", orNone(c.Default), orNone(defaultSQL(f)))
	}
	if (c.Unique != "") != wantsUnique(f) {
		add("unique", strconv.FormatBool(c.Unique != ""), strconv.FormatBool(wantsUnique(f)))
	}
	if !sameReference(schema, c, f) {
		add("references", referenceText(schema, c.Reference), referenceText(schema, f.References))
	}
	return diff
}

// wantsUnique reports whether f needs a unique constraint of its own; a
// primary key is unique already.
func wantsUnique(f FieldSpec) bool { return f.Unique && !f.PrimaryKey }

// defaultSQL is f's default as a literal, "" for none.
func defaultSQL(f FieldSpec) string {
	if !f.HasDefault() {
		return ""
	}
	d, _ := f.DefaultSQL()
	return d
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// sameReference reports whether the live column's foreign key is the one f
// asks for (or both have none).
func sameReference(schema string, c *Column, f FieldSpec) bool {
	return referenceText(schema, c.Reference) == referenceText(schema, f.References)
}

// referenceText renders a reference for comparison and for diffs.
func referenceText(schema string, r *Reference) string {
	if r == nil {
		return "none"
	}
	return referenceTarget(schema, r)
}

// sameDefault reports whether live, a column default as pg_get_expr prints
// it, is the literal f asks for as its default, or both have none. A live
// default that is not a literal (nextval(...), now()) matches no spec.
func sameDefault(live string, f FieldSpec) bool {
	if !f.HasDefault() || live == "" {
		return !f.HasDefault() && live == ""
	}
	want, err := f.defaultValue()
	if err != nil {
		return false
	}
	got, ok := literalValue(live)
	if !ok {
		return false
	}
	switch f.Type {
	case Int:
		g, err1 := strconv.ParseInt(got, 10, 64)
		w, err2 := strconv.ParseInt(want, 10, 64)
		return err1 == nil && err2 == nil && g == w
	case Float:
		g, err1 := strconv.ParseFloat(got, 64)
		w, err2 := strconv.ParseFloat(want, 64)
		return err1 == nil && err2 == nil && g == w
	case DateTime:
		g, ok := parseTimestamp(got)
		w, err := time.Parse(time.RFC3339Nano, want)
		return ok && err == nil && g.Equal(w)
	case Json:
		var g, w any
		return json.Unmarshal([]byte(got), &g) == nil && json.Unmarshal([]byte(want), &w) == nil && reflect.DeepEqual(g, w)
	}
	return got == want
}

var (
	// castSuffix matches the casts pg_get_expr appends to a literal:
	// ::integer, ::character varying, ::character varying(100)[], ...
	castSuffix = regexp.MustCompile(`^(::[a-z][a-z0-9_ ]*(\([0-9, ]+\))?(\[\])?)*$`)
	// bareLiteral matches the literals pg_get_expr prints unquoted.
	bareLiteral = regexp.MustCompile(`^(true|false|-?[0-9][0-9.eE+-]*)$`)
)

// literalValue reads a constant as pg_get_expr prints it: a quoted string
// or a bare number or boolean, optionally cast. It returns the value,
// unquoted and without the casts.
func literalValue(expr string) (string, bool) {
	if value, rest, ok := unquote(expr); ok {
		return value, castSuffix.MatchString(rest)
	}
	i := strings.Index(expr, "::")
	if i < 0 {
		i = len(expr)
	}
	return expr[:i], bareLiteral.MatchString(expr[:i]) && castSuffix.MatchString(expr[i:])
}

// unquote reads the quoted literal that starts s, in which a doubled quote
// stands for one, and returns its value and what follows it.
func unquote(s string) (value, rest string, ok bool) {
	if !strings.HasPrefix(s, "'") {
		return "", "", false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] != '\'':
			b.WriteByte(s[i])
		case i+1 < len(s) && s[i+1] == '\'':
			b.WriteByte('\'')
			i++
		default:
			return b.String(), s[i+1:], true
		}
	}
	return "", "", false
}

// timestampLayouts are PostgreSQL's ISO output of a timestamptz, by the
// precision of the zone offset; fractional seconds are optional in each.
var timestampLayouts = []string{
	"2006-01-02 15:04:05-07",
	"2006-01-02 15:04:05-07:00",
	"2006-01-02 15:04:05-07:00:00",
}

func parseTimestamp(s string) (time.Time, bool) {
	for _, layout := range timestampLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// copyModel returns a copy of meta that the plan may change, or an empty
// model called name if there is no metadata.
func copyModel(meta *Model, name string) *Model {
	if meta == nil {
		return &Model{Name: name}
	}
	return &Model{Name: meta.Name, Fields: slices.Clone(meta.Fields)}
}

// withField returns meta with f in place of the field of its name, or
// appended.
func withField(meta *Model, name string, f FieldSpec) *Model {
	m := copyModel(meta, name)
	if old := m.Field(f.Name); old != nil {
		*old = f
	} else {
		m.Fields = append(m.Fields, f)
	}
	return m
}

// fieldInPlace is the plan of a field operation whose column is already as
// asked: the metadata stays as it is if it describes the column alike (its
// JSON may be spelled differently), else it is set to f.
func fieldInPlace(s *State, model string, c *Column, f FieldSpec) *Plan {
	if old := s.Meta.Field(f.Name); old != nil && len(columnDiff(s.Schema, c, *old)) == 0 {
		return &Plan{Model: s.Meta}
	}
	return &Plan{Model: withField(s.Meta, model, f)}
}

// checkFieldName validates a field name given on its own.
func checkFieldName(name string) error {
	if err := checkName("field", name); err != nil {
		return &InvalidSpecError{Field: name, Reason: err.Error()}
	}
	return nil
}

// orgName is the form of an org name.
var orgName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// checkOrg validates the org of a tenant operation: an org name that
// PostgreSQL does not reserve for its own roles (pg_...), since the
// tenant role is named like the org.
func checkOrg(org string) error {
	if !orgName.MatchString(org) {
		return &InvalidSpecError{Reason: strconv.Quote(org) + " is not an org name (lower-case letters, digits, _ and -, up to 63, starting with a letter or digit)"}
	}
	if strings.HasPrefix(org, "pg_") {
		return &InvalidSpecError{Reason: strconv.Quote(org) + " cannot be an org name: PostgreSQL reserves role names starting with pg_"}
	}
	return nil
}
