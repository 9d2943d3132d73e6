package engine

import (
	"fmt"
	"strings"
	"time"
)

// Every error the engine reports about its input or the tenant's state has
// a SQLSTATE (SQLState) and may carry a DETAIL and a HINT (Detail, Hint), so
// a caller can turn it into a PostgreSQL ErrorResponse. Errors from
// PostgreSQL itself arrive as *pgconn.PgError, which has the same methods.

// InvalidSpecError is a problem with an operation's input, found before any
// SQL runs.
type InvalidSpecError struct {
	Field  string // the field (or argument) at fault; may be empty
	Reason string
}

func (e *InvalidSpecError) Error() string {
	if e.Field == "" {
		return "invalid spec: " + e.Reason
	}
	return fmt.Sprintf("invalid spec for field %q: %s", e.Field, e.Reason)
}

// SQLState implements the SQLSTATE classification.
func (e *InvalidSpecError) SQLState() string { return "22023" }

// UnknownTenantError is an org with no schema.
type UnknownTenantError struct{ Org string }

func (e *UnknownTenantError) Error() string    { return fmt.Sprintf("tenant %q does not exist", e.Org) }
func (e *UnknownTenantError) SQLState() string { return "3F000" }

// TenantExistsError is a create_tenant for an org that has a schema.
type TenantExistsError struct{ Org string }

func (e *TenantExistsError) Error() string    { return fmt.Sprintf("tenant %q already exists", e.Org) }
func (e *TenantExistsError) SQLState() string { return "42P06" }

// UnknownModelError is a model with no table.
type UnknownModelError struct{ Org, Model string }

func (e *UnknownModelError) Error() string {
	return fmt.Sprintf("model %q does not exist in tenant %q", e.Model, e.Org)
}
func (e *UnknownModelError) SQLState() string { return "42P01" }

// UnknownFieldError is a field with no column.
type UnknownFieldError struct{ Model, Field string }

func (e *UnknownFieldError) Error() string {
	return fmt.Sprintf("field %q of model %q does not exist", e.Field, e.Model)
}
func (e *UnknownFieldError) SQLState() string { return "42703" }

// FieldConflictError is a field that exists with another spec.
type FieldConflictError struct {
	Model, Field string
	Diff         string // what differs, live against asked
}

func (e *FieldConflictError) Error() string {
	return fmt.Sprintf("field %q of model %q already exists with another spec", e.Field, e.Model)
}
func (e *FieldConflictError) SQLState() string { return "42701" }
func (e *FieldConflictError) Detail() string   { return e.Diff }
func (e *FieldConflictError) Hint() string {
	return "Use alter_field to change nullable, default, unique or references, or another name."
}

// ModelConflictError is a model that exists with another spec.
type ModelConflictError struct {
	Model string
	Diff  string
}

func (e *ModelConflictError) Error() string {
	return fmt.Sprintf("model %q already exists with another spec", e.Model)
}
func (e *ModelConflictError) SQLState() string { return "42P07" }
func (e *ModelConflictError) Detail() string   { return e.Diff }

// UnsafeChangeError is a change refused because it would fail or block on
// a table that holds rows.
type UnsafeChangeError struct {
	Model, Field string
	Reason, Fix  string
}

func (e *UnsafeChangeError) Error() string {
	return fmt.Sprintf("cannot change field %q of model %q: %s", e.Field, e.Model, e.Reason)
}
func (e *UnsafeChangeError) SQLState() string { return "55000" }
func (e *UnsafeChangeError) Hint() string     { return e.Fix }

// NotOwnedError is a table of the tenant's schema that the engine's role
// does not own. The engine neither reads nor changes such a table (nor
// references it) until adopt_model makes it managed.
type NotOwnedError struct{ Org, Schema, Table string }

func (e *NotOwnedError) Error() string {
	return fmt.Sprintf("table %s is not managed by pgmigrate", qualified(e.Schema, e.Table))
}
func (e *NotOwnedError) SQLState() string { return "42501" }
func (e *NotOwnedError) Detail() string {
	return "The engine acts only on tables its own role owns; this one belongs to another role."
}
func (e *NotOwnedError) Hint() string {
	return fmt.Sprintf("CALL migrate.adopt_model(%s, org => %s) from an admin session makes it managed.", quoteLiteral(e.Table), quoteLiteral(e.Org))
}

// UnsupportedColumnError is a live column that adopt_model cannot describe
// as a field.
type UnsupportedColumnError struct {
	Model, Column, Type string
	Reason              string
}

func (e *UnsupportedColumnError) Error() string {
	return fmt.Sprintf("column %q (%s) of table %q cannot be a field: %s", e.Column, e.Type, e.Model, e.Reason)
}
func (e *UnsupportedColumnError) SQLState() string { return "0A000" }

// UnsupportedTableError is a table that adopt_model refuses to take over:
// What lists what it has that, once the engine's role owned it, would run
// code another role wrote, or reach a table the engine does not own, with
// the engine's rights.
type UnsupportedTableError struct {
	Model string
	What  []string
}

func (e *UnsupportedTableError) Error() string {
	return fmt.Sprintf("table %q cannot be a model: it has %s", e.Model, strings.Join(e.What, ", "))
}
func (e *UnsupportedTableError) SQLState() string { return "0A000" }
func (e *UnsupportedTableError) Detail() string {
	return "Once the engine's role owned the table, these would run with the engine's rights."
}
func (e *UnsupportedTableError) Hint() string {
	return "Remove them from the table (or adopt the tables its foreign keys involve first), then adopt it."
}

// UnsafeRoleError is a role named like a tenant's role or login role that
// exists but is not one the engine may take as such, or drop with the
// tenant: Reason says why (the engine's own role, a predefined role, one
// that may do more than a tenant, or one with other memberships).
type UnsafeRoleError struct {
	Role string
	// Login is true for the tenant's login role, false for its tenant
	// role.
	Login  bool
	Reason string
}

func (e *UnsafeRoleError) Error() string {
	as := "a tenant role"
	if e.Login {
		as = "a tenant's login role"
	}
	return fmt.Sprintf("role %q exists and cannot be %s: %s", e.Role, as, e.Reason)
}
func (e *UnsafeRoleError) SQLState() string { return "42501" }

// PoolTimeoutError is a wait for a free connection of the engine's pool
// that lasted Options.AcquireTimeout. It is transient, like PostgreSQL's
// too many connections, and is retried.
type PoolTimeoutError struct{ Wait time.Duration }

func (e *PoolTimeoutError) Error() string {
	return fmt.Sprintf("engine connection pool exhausted: no connection free within %v", e.Wait)
}
func (e *PoolTimeoutError) SQLState() string { return "53300" }
