package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Type is a field type of the FieldSpec.
type Type string

// The field types and the column types they map to.
const (
	String   Type = "String"   // varchar(maxLength)
	Int      Type = "Int"      // integer
	Float    Type = "Float"    // double precision
	Boolean  Type = "Boolean"  // boolean
	DateTime Type = "DateTime" // timestamptz
	Text     Type = "Text"     // text
	Json     Type = "Json"     // jsonb
)

// DefaultMaxLength is the varchar length of a String without maxLength.
const DefaultMaxLength = 100

// OnDelete actions of a reference.
const (
	Cascade  = "CASCADE"
	SetNull  = "SET NULL"
	Restrict = "RESTRICT"
)

// FieldSpec describes one column. Its JSON form (camelCase) is the seed
// engine's.
type FieldSpec struct {
	Name string `json:"name"`
	Type Type   `json:"type"`
	// Nullable defaults to true.
	Nullable *bool `json:"nullable,omitempty"`
	Unique   bool  `json:"unique,omitempty"`
	// Default is any JSON value matching Type; absent or null means none.
	Default    json.RawMessage `json:"default,omitempty"`
	References *Reference      `json:"references,omitempty"`
	// MaxLength is the varchar length of a String (DefaultMaxLength if 0).
	MaxLength  int  `json:"maxLength,omitempty"`
	PrimaryKey bool `json:"primaryKey,omitempty"`
}

// Reference is a foreign key to another table's column.
type Reference struct {
	// Schema defaults to the tenant's own schema.
	Schema   string `json:"schema,omitempty"`
	Table    string `json:"table"`
	Column   string `json:"column"`
	OnDelete string `json:"onDelete,omitempty"`
}

// ParseField decodes one FieldSpec from JSON, refusing unknown keys.
func ParseField(data []byte) (FieldSpec, error) {
	var f FieldSpec
	return f, decodeStrict(data, &f)
}

// ParseFields decodes a JSON array of FieldSpecs, refusing unknown keys.
func ParseFields(data []byte) ([]FieldSpec, error) {
	var fs []FieldSpec
	return fs, decodeStrict(data, &fs)
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &InvalidSpecError{Reason: "bad JSON: " + err.Error()}
	}
	if dec.More() {
		return &InvalidSpecError{Reason: "bad JSON: trailing data"}
	}
	return nil
}

// IsNullable reports the field's effective nullability: a primary key is
// never nullable.
func (f FieldSpec) IsNullable() bool {
	return !f.PrimaryKey && (f.Nullable == nil || *f.Nullable)
}

// HasDefault reports whether the field has a (non-null) default.
func (f FieldSpec) HasDefault() bool {
	return len(f.Default) > 0 && string(f.Default) != "null"
}

func (f FieldSpec) maxLength() int {
	if f.MaxLength == 0 {
		return DefaultMaxLength
	}
	return f.MaxLength
}

// ColumnType is the SQL type of the field, in PostgreSQL's canonical
// spelling (as format_type prints it).
func (f FieldSpec) ColumnType() string {
	switch f.Type {
	case String:
		return fmt.Sprintf("character varying(%d)", f.maxLength())
	case Int:
		return "integer"
	case Float:
		return "double precision"
	case Boolean:
		return "boolean"
	case DateTime:
		return "timestamp with time zone"
	case Text:
		return "text"
	case Json:
		return "jsonb"
	}
	return ""
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// reserved holds PostgreSQL's reserved key words and the system column
// names, which no model or field may take.
var reserved = strings.Fields(`all analyse analyze and any array as asc asymmetric both case cast check
collate column constraint create current_catalog current_date current_role current_time
current_timestamp current_user default deferrable desc distinct do else end except false fetch
for foreign from grant group having in initially intersect into lateral leading limit localtime
localtimestamp not null offset on only or order placing primary references returning select
session_user some symmetric table then to trailing true union unique user using variadic when
where window with authorization binary collation concurrently cross current_schema freeze full
ilike inner is isnull join left like natural notnull outer overlaps right similar tablesample
verbose tableoid xmin cmin xmax cmax ctid`)

// checkName validates a model, field or referenced name.
func checkName(kind, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s name is empty", kind)
	case len(name) > 63:
		return fmt.Errorf("%s name %q is longer than 63 bytes", kind, name)
	case !identifier.MatchString(name):
		return fmt.Errorf("%s name %q must start with a letter or underscore and hold only letters, digits and underscores", kind, name)
	case slices.Contains(reserved, strings.ToLower(name)):
		return fmt.Errorf("%s name %q is a reserved word", kind, name)
	}
	return nil
}

// CheckModelName validates a model name.
func CheckModelName(name string) error {
	if err := checkName("model", name); err != nil {
		return &InvalidSpecError{Reason: err.Error()}
	}
	return nil
}

// Validate checks the spec on its own, without I/O. allowedSchemas lists the
// schemas other than the tenant's own that references may point into.
func (f FieldSpec) Validate(allowedSchemas []string) error {
	bad := func(format string, args ...any) error {
		return &InvalidSpecError{Field: f.Name, Reason: fmt.Sprintf(format, args...)}
	}
	if err := checkName("field", f.Name); err != nil {
		return &InvalidSpecError{Field: f.Name, Reason: err.Error()}
	}
	if f.ColumnType() == "" {
		return bad("unknown type %q (want String, Int, Float, Boolean, DateTime, Text or Json)", f.Type)
	}
	if f.MaxLength != 0 && (f.Type != String || f.MaxLength < 1 || f.MaxLength > 10485760) {
		return bad("maxLength applies to String only, from 1 to 10485760")
	}
	if f.PrimaryKey && f.Nullable != nil && *f.Nullable {
		return bad("a primary key cannot be nullable")
	}
	if f.HasDefault() {
		if _, err := f.DefaultSQL(); err != nil {
			return bad("%v", err)
		}
	}
	if r := f.References; r != nil {
		if err := r.validate(allowedSchemas); err != nil {
			return bad("references: %v", err)
		}
		if r.OnDelete == SetNull && !f.IsNullable() {
			return bad("onDelete SET NULL needs a nullable field")
		}
	}
	return nil
}

func (r *Reference) validate(allowedSchemas []string) error {
	if r.Schema != "" && !slices.Contains(allowedSchemas, r.Schema) {
		return fmt.Errorf("schema %q is not the tenant's own and not allowed", r.Schema)
	}
	if err := checkName("table", r.Table); err != nil {
		return err
	}
	if err := checkName("column", r.Column); err != nil {
		return err
	}
	switch r.OnDelete {
	case "", Cascade, SetNull, Restrict:
		return nil
	}
	return fmt.Errorf("onDelete %q is not one of CASCADE, SET NULL, RESTRICT", r.OnDelete)
}

// onDelete is the effective action (RESTRICT when unset).
func (r *Reference) onDelete() string {
	if r.OnDelete == "" {
		return Restrict
	}
	return r.OnDelete
}

// DefaultSQL renders the default as a SQL literal of the column type. The
// engine's transactions run with standard_conforming_strings on, so a
// quoted literal only needs its quotes doubled.
func (f FieldSpec) DefaultSQL() (string, error) {
	v, err := f.defaultValue()
	if err != nil {
		return "", err
	}
	switch f.Type {
	case Int, Float, Boolean:
		return v, nil
	case DateTime:
		return quoteLiteral(v) + "::timestamptz", nil
	case Json:
		return quoteLiteral(v) + "::jsonb", nil
	}
	return quoteLiteral(v), nil
}

// defaultValue checks the JSON default against the type and returns it as
// text in the form PostgreSQL reads it.
func (f FieldSpec) defaultValue() (string, error) {
	raw := f.Default
	var s string
	var n json.Number
	isString := json.Unmarshal(raw, &s) == nil
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	isNumber := !isString && dec.Decode(&n) == nil
	switch f.Type {
	case String, Text:
		switch {
		case !isString:
			return "", fmt.Errorf("default %s is not a string", raw)
		case strings.ContainsRune(s, 0) || !utf8.ValidString(s):
			return "", fmt.Errorf("default holds a NUL byte or invalid UTF-8")
		case f.Type == String && utf8.RuneCountInString(s) > f.maxLength():
			return "", fmt.Errorf("default is longer than maxLength %d", f.maxLength())
		}
		return s, nil
	case Int:
		i, err := strconv.ParseInt(string(n), 10, 32)
		if !isNumber || err != nil {
			return "", fmt.Errorf("default %s is not a 32-bit integer", raw)
		}
		return strconv.FormatInt(i, 10), nil
	case Float:
		x, err := strconv.ParseFloat(string(n), 64)
		if !isNumber || err != nil || math.IsInf(x, 0) {
			return "", fmt.Errorf("default %s is not a number", raw)
		}
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case Boolean:
		var b bool
		if json.Unmarshal(raw, &b) != nil {
			return "", fmt.Errorf("default %s is not a boolean", raw)
		}
		return strconv.FormatBool(b), nil
	case DateTime:
		t, err := time.Parse(time.RFC3339Nano, s)
		if !isString || err != nil {
			return "", fmt.Errorf("default %s is not an RFC 3339 timestamp", raw)
		}
		return t.UTC().Format(time.RFC3339Nano), nil
	case Json:
		var v any
		if json.Unmarshal(raw, &v) != nil {
			return "", fmt.Errorf("default is not JSON")
		}
		canon, _ := json.Marshal(v)
		if bytes.ContainsRune(canon, 0) || strings.Contains(string(canon), `\u0000`) {
			return "", fmt.Errorf("default holds a NUL character")
		}
		return string(canon), nil
	}
	return "", fmt.Errorf("unknown type %q", f.Type)
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func itoa(i int) string { return strconv.Itoa(i) }
