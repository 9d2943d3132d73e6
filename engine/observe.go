package engine

import (
	"errors"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// Log attribute keys. The logger's message is the change in the seed's
// words ("CREATE TABLE", "ALTER TABLE ADD COLUMN"); a handler that names
// the message key "message" gives the seed's log shape.
const (
	keyOrg        = "org"
	keyTable      = "table"
	keyFields     = "fields"
	keyAttempt    = "attempt"
	keyDurationMS = "duration_ms"
	keyDelayMS    = "delay_ms"
	keySQLState   = "sqlstate"
	keyError      = "error"
	keyTraceID    = "trace_id"
	keyStatement  = "statement"
	keyAppliedBy  = "applied_by"
)

var attrSystem = semconv.DBSystemNamePostgreSQL

// logMessage is the seed's message for the operation's change.
func logMessage(op Operation) string {
	switch op.Kind() {
	case "create_model":
		return "CREATE TABLE"
	case "add_field":
		return "ALTER TABLE ADD COLUMN"
	case "drop_field":
		return "ALTER TABLE DROP COLUMN"
	case "drop_model":
		return "DROP TABLE"
	case "rename_field":
		return "ALTER TABLE RENAME COLUMN"
	case "alter_field":
		return "ALTER TABLE ALTER COLUMN"
	case "adopt_model":
		return "ALTER TABLE OWNER"
	case "create_tenant":
		return "CREATE TENANT"
	case "drop_tenant":
		return "DROP TENANT"
	}
	return strings.ToUpper(op.Kind())
}

// fieldNames lists the fields a change touched: the one field, or every
// field of a created model.
func fieldNames(m *Model, field string) []string {
	if field != "" {
		return []string{field}
	}
	var names []string
	if m != nil {
		for _, f := range m.Fields {
			names = append(names, f.Name)
		}
	}
	return names
}

// sqlStater is an error that knows its SQLSTATE: the engine's own and
// *pgconn.PgError.
type sqlStater interface{ SQLState() string }

// sqlState is err's SQLSTATE, "" if it has none.
func sqlState(err error) string {
	var s sqlStater
	if errors.As(err, &s) {
		return s.SQLState()
	}
	return ""
}

// recordError marks span failed with err and its SQLSTATE.
func recordError(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	if code := sqlState(err); code != "" {
		span.SetAttributes(semconv.DBResponseStatusCode(code), semconv.ErrorTypeKey.String(code))
	} else {
		span.SetAttributes(semconv.ErrorTypeKey.String("_OTHER"))
	}
}

// statementName is a span name for a statement: its first two words
// ("ALTER TABLE", "CREATE UNIQUE").
func statementName(sql string) string {
	words := strings.Fields(sql)
	return strings.Join(words[:min(2, len(words))], " ")
}

// namespace is db.namespace: database|schema.
func namespace(database, schema string) attribute.KeyValue {
	return semconv.DBNamespace(database + "|" + schema)
}
