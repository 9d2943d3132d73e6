package engine

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Operation is one mutating command. It is compiled, then executed: Plan
// does no I/O, deriving from the tenant's current State the SQL that brings
// it where the operation wants it, so plans are golden-tested without a
// database. The runner then executes the plan under the tenant's lock, in
// transactions, with retries.
type Operation interface {
	// Kind names the command ("add_field") in results, history and spans.
	Kind() string
	// Target is the model (and field, or "") the operation is about; for
	// tenant operations both are empty.
	Target() (model, field string)
	// Validate checks the input without I/O.
	Validate(opts *Options) error
	// Plan derives the steps from the state. A plan with no phases and an
	// unchanged model means the operation is already in place.
	Plan(s *State) (*Plan, error)
}

// rechecker is an operation whose plan rests on facts that could change
// between reading the state and committing: recheck runs in the
// transaction of its last phase, after the phase's statements (whose
// locks then keep the facts from changing), and fails the attempt if
// they no longer hold.
type rechecker interface {
	recheck(ctx context.Context, q querier, s *State) error
}

// State is what an operation's plan starts from: the live catalog of the
// tenant's schema for the target model, and the engine's metadata for it.
type State struct {
	Org    string
	Schema string
	// SchemaExists is false for a tenant that has no schema yet.
	SchemaExists bool
	// Registered is true when pgmigrate.tenants lists the org.
	Registered bool
	// Role is the role named like the org (the tenant role), nil if none
	// exists. Role, Login and Grants are read only for the operations
	// that plan from them (see readsRoles).
	Role *Role
	// Login is the role named <org>.login (the tenant's login role), nil
	// if none exists.
	Login *Role
	// Grants are the tenant role's privileges in the schema, if it exists
	// (none if the role does not).
	Grants Grants
	// Table is the live table, nil if it does not exist.
	Table *Table
	// Unowned lists the tables of the tenant's schema that the engine's
	// role does not own (read for the operations that may add references).
	Unowned []string
	// Meta is the engine's metadata of the model, nil if it has none.
	Meta *Model
	// HasRows is true when the table holds at least one row; it is read
	// only from a table the engine's role owns.
	HasRows bool
}

// Role is an existing role, with what decides whether the engine may take
// it as a tenant's role or login role, and drop it with the tenant.
type Role struct {
	Name     string
	CanLogin bool
	// Powers lists the attributes it has that reach beyond a tenant, of
	// SUPERUSER, CREATEROLE, CREATEDB, REPLICATION and BYPASSRLS.
	Powers []string
	// Engine is true for the engine's role (current_user).
	Engine bool
	// Predefined is true for a role PostgreSQL makes itself.
	Predefined bool
	// MemberOf lists the roles it is a member of, by name.
	MemberOf []string
	// Holds lists what it owns or holds privileges on outside the
	// tenant's schema, in this database or another.
	Holds []string
}

// checkRoles fails with UnsafeRoleError unless the tenant role, and with
// login the tenant's login role, are each absent or one the engine may
// take as such: a tenant role is NOLOGIN and a member of no role, a login
// role can log in and is a member of the tenant role only, and neither
// is the engine's role, a predefined role, one with an attribute that
// reaches beyond a tenant, or one that owns or holds privileges on
// anything outside the tenant's schema. So an org's name never hands a tenant, or
// drop_tenant, a role that can do more than the tenant.
func (s *State) checkRoles(login bool) error {
	if r := s.Role; r != nil {
		if reason := r.unsafeAsTenant(); reason != "" {
			return &UnsafeRoleError{Role: r.Name, Reason: reason}
		}
	}
	if r := s.Login; login && r != nil {
		if reason := r.unsafeAsLogin(s.Org); reason != "" {
			return &UnsafeRoleError{Role: r.Name, Login: true, Reason: reason}
		}
	}
	return nil
}

// unsafeAsTenant says why r cannot be a tenant role, "" if it can.
func (r *Role) unsafeAsTenant() string {
	if reason := r.unsafe(); reason != "" {
		return reason
	}
	switch {
	case r.CanLogin:
		return "it can log in"
	case len(r.MemberOf) > 0:
		return "it is a member of " + quoteNames(r.MemberOf)
	}
	return ""
}

// unsafeAsLogin says why r cannot be the login role of the tenant role
// named tenant, "" if it can.
func (r *Role) unsafeAsLogin(tenant string) string {
	if reason := r.unsafe(); reason != "" {
		return reason
	}
	others := slices.DeleteFunc(slices.Clone(r.MemberOf), func(m string) bool { return m == tenant })
	switch {
	case !r.CanLogin:
		return "it cannot log in"
	case len(others) == len(r.MemberOf):
		return "it is not a member of " + strconv.Quote(tenant)
	case len(others) > 0:
		return "it is also a member of " + quoteNames(others)
	}
	return ""
}

// unsafe says why r can be neither a tenant role nor a login role, "" if
// nothing forbids both.
func (r *Role) unsafe() string {
	switch {
	case r.Engine:
		return "it is the engine's role"
	case r.Predefined:
		return "it is predefined by PostgreSQL"
	case len(r.Powers) > 0:
		return "it has " + strings.Join(r.Powers, ", ")
	case len(r.Holds) > 0:
		return "it owns or holds privileges on " + strings.Join(r.Holds, ", ") + ", outside the tenant's schema"
	}
	return ""
}

// quoteNames lists names, each double-quoted.
func quoteNames(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = strconv.Quote(n)
	}
	return strings.Join(quoted, ", ")
}

// Grants are what the tenant role may do in its schema.
type Grants struct {
	// Usage and Create are the role's own privileges on the schema, not
	// counting what PUBLIC has.
	Usage, Create bool
	// DefaultTables and DefaultSequences are true when the engine role's
	// default privileges in the schema give the role tablePrivileges on
	// the tables, and sequencePrivileges on the sequences, it creates.
	DefaultTables, DefaultSequences bool
	// Ungranted lists the tables of the schema that the engine's role owns
	// and on which the role lacks some of tablePrivileges.
	Ungranted []string
}

// Table is a live table as the catalog describes it.
type Table struct {
	Name string
	// Owned is true when the engine's role (the pool's user) owns it.
	Owned   bool
	Columns []Column
	// Unsafe lists what the table has that would run code another role
	// wrote, or reach a table the engine does not own, with the rights of
	// the table's owner (trigger, rule, row-level security, policy, check
	// constraint, index on an expression, partial index, statistics,
	// generated column, partitions, parent or child table, foreign key to
	// or from a table of another owner), each as "kind name". It is read
	// for adopt_model only.
	Unsafe []string
}

// Column returns the live column called name, or nil.
func (t *Table) Column(name string) *Column {
	if t == nil {
		return nil
	}
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i]
		}
	}
	return nil
}

// Column is a live column: type as format_type prints it, default as
// pg_get_expr prints it ("" for none), and the single-column constraints on
// it.
type Column struct {
	Name       string
	Type       string
	NotNull    bool
	Default    string
	PrimaryKey bool
	// Unique names the single-column unique constraint, "" if none.
	Unique string
	// Reference is the single-column foreign key, nil if none; its Schema
	// is always set. ReferenceName names the constraint.
	Reference     *Reference
	ReferenceName string
	// ReferenceValid is false for a NOT VALID foreign key.
	ReferenceValid bool
	// UniqueIndex is the state of the unique index named as the engine
	// names the column's unique constraint (uniqueName) when no constraint
	// uses it, as a run that stopped between the phases of a unique
	// constraint leaves it: UniqueIndexInvalid, UniqueIndexUnattached, or
	// "" if there is no such index (or a constraint uses it).
	UniqueIndex string
}

// The states of Column.UniqueIndex.
const (
	// UniqueIndexInvalid is an index that CREATE INDEX CONCURRENTLY left
	// invalid when it failed or was interrupted.
	UniqueIndexInvalid = "invalid"
	// UniqueIndexUnattached is a valid unique index that no primary key,
	// unique or exclusion constraint uses.
	UniqueIndexUnattached = "unattached"
)

// Model is the engine's metadata of one model: its fields in order.
type Model struct {
	Name   string
	Fields []FieldSpec
}

// Field returns the field called name, or nil.
func (m *Model) Field(name string) *FieldSpec {
	if m == nil {
		return nil
	}
	for i := range m.Fields {
		if m.Fields[i].Name == name {
			return &m.Fields[i]
		}
	}
	return nil
}

// Plan is a compiled operation.
type Plan struct {
	// Phases run in order, each committed before the next starts. The
	// metadata change and the history row commit with the last
	// transactional phase (or in a phase of their own after an online one).
	Phases []Phase
	// Model is the model's metadata after the operation; nil with
	// DropModel removes it, nil without it leaves the metadata alone.
	Model     *Model
	DropModel bool
	// Tenant changes for create_tenant / drop_tenant.
	AddTenant, DropTenant bool
	// Login is the tenant's login role of a create_tenant that asks for
	// one, and Password its password if the plan makes it.
	Login, Password string
}

// Phase is one transaction, or one statement that cannot run in a
// transaction block (Online: CREATE INDEX CONCURRENTLY and the like).
type Phase struct {
	// Statements are the phase's SQL as results, history, logs and spans
	// show it.
	Statements []string
	// Hidden holds, by index in Statements, the form that runs of a
	// statement that holds a secret (a login role's password verifier),
	// which Statements shows redacted.
	Hidden map[int]string
	Online bool
	// Undo reverses a phase that committed when a later one fails, so a
	// failed operation leaves nothing behind.
	Undo []string
}

// run is the i-th statement as it runs.
func (ph Phase) run(i int) string {
	if sql, ok := ph.Hidden[i]; ok {
		return sql
	}
	return ph.Statements[i]
}

// Statements lists every statement of the plan in order, as shown; a plan
// without any gives an empty list, not nil, which the history records as
// such.
func (p *Plan) Statements() []string {
	out := []string{}
	for _, ph := range p.Phases {
		out = append(out, ph.Statements...)
	}
	return out
}

// tablePrivileges are what the tenant role may do on the engine's tables:
// everything but change or drop them. sequencePrivileges are its
// privileges on the engine's sequences.
var (
	tablePrivileges    = []string{"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES"}
	sequencePrivileges = []string{"USAGE", "SELECT", "UPDATE"}
)

// grantTable gives role tablePrivileges on schema.name.
func grantTable(schema, name, role string) string {
	return "GRANT " + strings.Join(tablePrivileges, ", ") + " ON TABLE " + qualified(schema, name) + " TO " + ident(role)
}

// managed fails with NotOwnedError unless the engine's role owns the
// model's table, if it exists, and every table of the tenant's schema that
// fields reference: the engine never reads or changes a table that
// another role, whose code (policies, triggers) could run with the
// engine's rights, owns.
func (s *State) managed(model string, fields ...FieldSpec) error {
	if s.Table != nil && !s.Table.Owned {
		return &NotOwnedError{Org: s.Org, Schema: s.Schema, Table: model}
	}
	for _, f := range fields {
		r := f.References
		if r != nil && (r.Schema == "" || r.Schema == s.Schema) && slices.Contains(s.Unowned, r.Table) {
			return &NotOwnedError{Org: s.Org, Schema: s.Schema, Table: r.Table}
		}
	}
	return nil
}

// ident quotes an identifier.
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// qualified quotes schema.name.
func qualified(schema, name string) string { return pgx.Identifier{schema, name}.Sanitize() }

// columnDef renders a column definition for CREATE TABLE and ADD COLUMN,
// with its inline constraints.
func columnDef(schema string, f FieldSpec) string {
	var b strings.Builder
	b.WriteString(ident(f.Name))
	b.WriteString(" ")
	b.WriteString(sqlType(f))
	if f.PrimaryKey {
		b.WriteString(" PRIMARY KEY")
	} else if !f.IsNullable() {
		b.WriteString(" NOT NULL")
	}
	if f.HasDefault() {
		d, _ := f.DefaultSQL()
		b.WriteString(" DEFAULT ")
		b.WriteString(d)
	}
	if f.Unique && !f.PrimaryKey {
		b.WriteString(" UNIQUE")
	}
	if r := f.References; r != nil {
		b.WriteString(" REFERENCES ")
		b.WriteString(referenceTarget(schema, r))
	}
	return b.String()
}

// referenceTarget renders "schema"."table" ("column") ON DELETE action.
func referenceTarget(schema string, r *Reference) string {
	if r.Schema != "" {
		schema = r.Schema
	}
	return qualified(schema, r.Table) + " (" + ident(r.Column) + ") ON DELETE " + r.onDelete()
}

// sqlType is the type as written in DDL (short forms, as the seed wrote
// them).
func sqlType(f FieldSpec) string {
	switch f.Type {
	case String:
		return "varchar(" + itoa(f.maxLength()) + ")"
	case DateTime:
		return "timestamptz"
	}
	return f.ColumnType()
}
