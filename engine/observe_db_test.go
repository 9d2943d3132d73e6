package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// traced returns opts with a tracer provider whose ended spans the
// returned recorder keeps.
func traced(t testing.TB, opts Options) (Options, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() {
		if err := tp.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	opts.TracerProvider = tp
	return opts, rec
}

// operationSpan returns the one span named name among the recorder's
// ended spans, and all of them; it resets the recorder.
func operationSpan(t testing.TB, rec *tracetest.SpanRecorder, name string) (sdktrace.ReadOnlySpan, []sdktrace.ReadOnlySpan) {
	t.Helper()
	spans := rec.Ended()
	rec.Reset()
	var found []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans named %q, want 1", len(found), name)
	}
	return found[0], spans
}

// spanAttrs returns a span's attributes as strings.
func spanAttrs(s sdktrace.ReadOnlySpan) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Attributes() {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

// wantAttrs checks that a span has the attributes want.
func wantAttrs(t testing.TB, s sdktrace.ReadOnlySpan, want map[string]string) {
	t.Helper()
	got := spanAttrs(s)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("span %q: %s = %q, want %q (attributes %v)", s.Name(), k, got[k], v, got)
		}
	}
}

// childrenOf returns the spans whose parent is one of parents.
func childrenOf(spans []sdktrace.ReadOnlySpan, parents ...sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if slices.ContainsFunc(parents, func(p sdktrace.ReadOnlySpan) bool { return s.Parent().SpanID() == p.SpanContext().SpanID() }) {
			out = append(out, s)
		}
	}
	return out
}

func TestOperationSpans(t *testing.T) {
	opts, rec := traced(t, testOptions())
	db := newInvoiceDB(t, opts)
	rec.Reset()

	r := db.apply(t, "acme", addAmount)
	op, spans := operationSpan(t, rec, "migrate.add_field")
	wantAttrs(t, op, map[string]string{
		"db.system.name":     "postgresql",
		"db.operation.name":  "add_field",
		"db.collection.name": "invoice",
		"db.namespace":       db.name + "|acme",
	})
	if op.Status().Code == codes.Error {
		t.Errorf("applied operation's span has status %+v", op.Status())
	}

	attempts := childrenOf(spans, op)
	if len(attempts) != r.Attempts || slices.ContainsFunc(attempts, func(s sdktrace.ReadOnlySpan) bool { return s.Name() != "attempt" }) {
		t.Fatalf("children of the operation span: %d (%v), want %d attempt spans", len(attempts), attempts, r.Attempts)
	}
	var queries []string
	for _, s := range childrenOf(spans, attempts...) {
		if s.SpanKind() != trace.SpanKindClient {
			continue
		}
		a := spanAttrs(s)
		if a["db.system.name"] != "postgresql" || a["db.query.text"] == "" {
			t.Errorf("statement span %q: attributes %v", s.Name(), a)
		}
		if s.SpanContext().TraceID() != op.SpanContext().TraceID() {
			t.Errorf("statement span %q in another trace", s.Name())
		}
		queries = append(queries, a["db.query.text"])
	}
	for _, st := range r.Statements {
		if !slices.Contains(queries, st) {
			t.Errorf("no statement span for %q (spans for %q)", st, queries)
		}
	}

	// The engine's own error.
	_, err := db.engine.Apply(testCtx(t), "acme", &AddField{Model: "invoice", Field: FieldSpec{Name: "amount", Type: Text}})
	wantErr[*FieldConflictError](t, err, "42701")
	op, _ = operationSpan(t, rec, "migrate.add_field")
	if op.Status().Code != codes.Error {
		t.Errorf("failed operation's span has status %+v", op.Status())
	}
	wantAttrs(t, op, map[string]string{"error.type": "42701", "db.response.status_code": "42701"})

	// PostgreSQL's error, on the operation and on the statement that got it.
	db.exec(t, `INSERT INTO acme.invoice (id, name) VALUES (1, 'a'), (2, 'a')`)
	_, err = db.engine.Apply(testCtx(t), "acme", &AlterField{Model: "invoice", Field: FieldSpec{Name: "name", Type: String, Unique: true}})
	wantErr[*pgconn.PgError](t, err, "23505")
	op, spans = operationSpan(t, rec, "migrate.alter_field")
	wantAttrs(t, op, map[string]string{"error.type": "23505", "db.response.status_code": "23505"})
	failed := slices.ContainsFunc(childrenOf(spans, childrenOf(spans, op)...), func(s sdktrace.ReadOnlySpan) bool {
		return s.SpanKind() == trace.SpanKindClient && spanAttrs(s)["db.response.status_code"] == "23505"
	})
	if !failed {
		t.Error("no statement span carries the 23505")
	}
}

// syncBuffer is a bytes.Buffer safe for a handler writing while a test
// reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines decodes the JSON lines written so far.
func (b *syncBuffer) lines(t testing.TB) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range bytes.Lines(b.buf.Bytes()) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// logLine returns the one line whose message is msg.
func logLine(t testing.TB, lines []map[string]any, msg string) map[string]any {
	t.Helper()
	var found []map[string]any
	for _, l := range lines {
		if l[slog.MessageKey] == msg {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d log lines with message %q, want 1: %v", len(found), msg, lines)
	}
	return found[0]
}

// wantLogNumber checks that line has a number at key, at least least.
func wantLogNumber(t testing.TB, line map[string]any, key string, least float64) {
	t.Helper()
	if n, ok := line[key].(float64); !ok || n < least {
		t.Errorf("log %s = %v, want a number of at least %v: %v", key, line[key], least, line)
	}
}

func TestAppliedChangeLogged(t *testing.T) {
	var buf syncBuffer
	opts, rec := traced(t, testOptions())
	opts.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	db := newInvoiceDB(t, opts)

	r := db.apply(t, "acme", addAmount)
	op, _ := operationSpan(t, rec, "migrate.add_field")
	lines := buf.lines(t)

	created := logLine(t, lines, "CREATE TABLE")
	if fields, _ := json.Marshal(created["fields"]); string(fields) != `["id","name"]` {
		t.Errorf("CREATE TABLE fields %s, want [\"id\",\"name\"]", fields)
	}
	added := logLine(t, lines, "ALTER TABLE ADD COLUMN")
	if added["org"] != "acme" || added["table"] != "invoice" {
		t.Errorf("ALTER TABLE ADD COLUMN line: %v", added)
	}
	if fields, _ := json.Marshal(added["fields"]); string(fields) != `["amount"]` {
		t.Errorf("ALTER TABLE ADD COLUMN fields %s, want [\"amount\"]", fields)
	}
	wantLogNumber(t, added, "duration_ms", 0)
	wantLogNumber(t, added, "attempt", float64(r.Attempts))
	if added["trace_id"] != op.SpanContext().TraceID().String() {
		t.Errorf("log trace_id %v, operation span's %s", added["trace_id"], op.SpanContext().TraceID())
	}
}

func TestRetryLogged(t *testing.T) {
	var buf syncBuffer
	opts := testOptions()
	opts.Retry.MaxAttempts = 2
	opts.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
	db := newInvoiceDB(t, opts)
	newBlocker(t, db, lockInvoice)

	_, err := db.engine.Apply(testCtx(t), "acme", addAmount)
	wantErr[*pgconn.PgError](t, err, "55P03")
	var retries []map[string]any
	for _, l := range buf.lines(t) {
		if l["sqlstate"] == "55P03" {
			retries = append(retries, l)
		}
	}
	if len(retries) != 1 {
		t.Fatalf("%d log lines with sqlstate 55P03, want 1 (one retry)", len(retries))
	}
	if l := retries[0]; l["org"] != "acme" || l["table"] != "invoice" || l[slog.LevelKey] != "WARN" {
		t.Errorf("retry line %v", l)
	}
	wantLogNumber(t, retries[0], "attempt", 1)
	wantLogNumber(t, retries[0], "delay_ms", 0)
}
