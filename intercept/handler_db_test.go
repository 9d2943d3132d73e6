package intercept

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/pgmigrate/pgmigrate-proxy/engine"
	"github.com/pgmigrate/pgmigrate-proxy/policy"
)

// testTimeout bounds a test's waits, so a hang fails instead of blocking
// the run; it says nothing about how fast anything should be.
const testTimeout = 2 * time.Minute

// fixture is a handler with one engine on a fresh database holding the
// tenant schema "acme", and the spans both record.
type fixture struct {
	h    *Handler
	eng  *engine.Engine
	rec  *tracetest.SpanRecorder
	sess Session
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	db := cluster.CreateDatabase(t)
	if err := cluster.Exec(ctx, db, `CREATE SCHEMA acme;
DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'acme') THEN CREATE ROLE acme NOLOGIN; END IF; END$$`); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, cluster.DSN("postgres", db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	opts := engine.DefaultOptions()
	opts.TracerProvider = tp
	eng := engine.New(pool, opts)
	return &fixture{
		h: &Handler{
			Engine:         func(policy.Route) (*engine.Engine, error) { return eng, nil },
			Rules:          func() policy.Rules { return policy.Rules{Migrators: []string{"*"}, AllowDrop: true} },
			TracerProvider: tp,
		},
		eng: eng,
		rec: rec,
		sess: Session{User: "postgres", Route: policy.Route{
			Org: "acme", Upstream: &policy.Target{Name: "main"}, Database: db, Schema: "acme",
		}},
	}
}

// query runs sql through the handler and decodes the response.
func (f *fixture) query(t testing.TB, sql string) []pgproto3.BackendMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return decode(t, f.h.Query(ctx, f.sess, sql))
}

// decode splits a response into its messages, as a client reads them.
func decode(t testing.TB, out []byte) []pgproto3.BackendMessage {
	t.Helper()
	var msgs []pgproto3.BackendMessage
	for len(out) > 0 {
		if len(out) < 5 {
			t.Fatalf("%d bytes left over after %d messages", len(out), len(msgs))
		}
		n := int(binary.BigEndian.Uint32(out[1:5])) + 1
		if n < 5 || n > len(out) {
			t.Fatalf("message %q of length %d in %d bytes", out[0], n, len(out))
		}
		var msg pgproto3.BackendMessage
		switch out[0] {
		case 'T':
			msg = &pgproto3.RowDescription{}
		case 'D':
			msg = &pgproto3.DataRow{}
		case 'C':
			msg = &pgproto3.CommandComplete{}
		case 'E':
			msg = &pgproto3.ErrorResponse{}
		default:
			t.Fatalf("unexpected message type %q", out[0])
		}
		if err := msg.Decode(out[5:n]); err != nil {
			t.Fatalf("decoding %T: %v", msg, err)
		}
		msgs = append(msgs, msg)
		out = out[n:]
	}
	return msgs
}

// span returns the one ended span called name.
func (f *fixture) span(t testing.TB, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	var found []sdktrace.ReadOnlySpan
	for _, s := range f.rec.Ended() {
		if s.Name() == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d spans named %q, want 1", len(found), name)
	}
	return found[0]
}

// attr returns the value of the attribute key of s, "" if it has none.
func attr(s sdktrace.ReadOnlySpan, key attribute.Key) string {
	for _, kv := range s.Attributes() {
		if kv.Key == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

const (
	traceID      = "0af7651916cd43dd8448eb211c80319c"
	parentSpanID = "b7ad6b7169203331"
	traceComment = "/*traceparent='00-" + traceID + "-" + parentSpanID + "-01'*/ "
)

func TestQueryCreateModel(t *testing.T) {
	f := newFixture(t)
	msgs := f.query(t, traceComment+`CALL migrate.create_model('invoice', '[{"name":"id","type":"Int"}]')`)

	if len(msgs) != 3 {
		t.Fatalf("got %d messages %#v, want RowDescription, DataRow, CommandComplete", len(msgs), msgs)
	}
	desc, ok := msgs[0].(*pgproto3.RowDescription)
	if !ok {
		t.Fatalf("first message %T, want RowDescription", msgs[0])
	}
	row, ok := msgs[1].(*pgproto3.DataRow)
	if !ok {
		t.Fatalf("second message %T, want DataRow", msgs[1])
	}
	if cc, ok := msgs[2].(*pgproto3.CommandComplete); !ok || string(cc.CommandTag) != "CALL" {
		t.Fatalf("third message %#v, want CommandComplete CALL", msgs[2])
	}
	if len(desc.Fields) != len(row.Values) {
		t.Fatalf("%d columns described, %d values", len(desc.Fields), len(row.Values))
	}
	values := map[string]string{}
	for i, fd := range desc.Fields {
		values[string(fd.Name)] = string(row.Values[i])
	}
	for col, want := range map[string]string{"status": "applied", "org": "acme", "model": "invoice", "attempts": "1"} {
		if values[col] != want {
			t.Errorf("%s = %q, want %q", col, values[col], want)
		}
	}

	cmd := f.span(t, "CALL migrate.create_model")
	if got := cmd.SpanContext().TraceID().String(); got != traceID {
		t.Errorf("command span trace id %s, want %s", got, traceID)
	}
	if got := cmd.Parent().SpanID().String(); got != parentSpanID || !cmd.Parent().IsRemote() {
		t.Errorf("command span parent %s (remote %v), want remote %s", got, cmd.Parent().IsRemote(), parentSpanID)
	}
	if cmd.SpanKind() != trace.SpanKindServer {
		t.Errorf("command span kind %v, want server", cmd.SpanKind())
	}
	if got := attr(cmd, "db.operation.name"); got != "CALL" {
		t.Errorf("db.operation.name = %q, want CALL", got)
	}
	if got := attr(cmd, "db.stored_procedure.name"); got != "migrate.create_model" {
		t.Errorf("db.stored_procedure.name = %q, want migrate.create_model", got)
	}
	if cmd.Status().Code == codes.Error {
		t.Errorf("command span status %v", cmd.Status())
	}

	op := f.span(t, "migrate.create_model")
	if op.Parent().SpanID() != cmd.SpanContext().SpanID() || op.SpanContext().TraceID() != cmd.SpanContext().TraceID() {
		t.Errorf("engine span parent %s, want the command span %s", op.Parent().SpanID(), cmd.SpanContext().SpanID())
	}

	// The statements ran in the trace, each with its text.
	statements := 0
	for _, s := range f.rec.Ended() {
		if s.SpanKind() != trace.SpanKindClient {
			continue
		}
		statements++
		if s.SpanContext().TraceID() != cmd.SpanContext().TraceID() {
			t.Errorf("statement span %q in trace %s", s.Name(), s.SpanContext().TraceID())
		}
		if attr(s, "db.query.text") == "" {
			t.Errorf("statement span %q has no db.query.text", s.Name())
		}
	}
	if statements == 0 {
		t.Error("no statement spans")
	}
}

func TestQueryErrorSetsSpanStatus(t *testing.T) {
	f := newFixture(t)
	msgs := f.query(t, traceComment+`CALL migrate.add_field('nosuch', '{"name":"note","type":"String"}')`)
	if len(msgs) != 1 {
		t.Fatalf("got %d messages %#v, want one ErrorResponse", len(msgs), msgs)
	}
	er, ok := msgs[0].(*pgproto3.ErrorResponse)
	if !ok || er.Code != "42P01" {
		t.Fatalf("response %#v, want ErrorResponse 42P01", msgs[0])
	}
	cmd := f.span(t, "CALL migrate.add_field")
	if cmd.Status().Code != codes.Error || cmd.Status().Description != er.Message {
		t.Errorf("command span status %v, want error %q", cmd.Status(), er.Message)
	}
	if got := cmd.SpanContext().TraceID().String(); got != traceID {
		t.Errorf("command span trace id %s, want %s", got, traceID)
	}
}

func TestQueryWithoutTraceparentIsRoot(t *testing.T) {
	f := newFixture(t)
	msgs := f.query(t, `CALL migrate.create_model('invoice', '[{"name":"id","type":"Int"}]')`)
	if _, ok := msgs[len(msgs)-1].(*pgproto3.CommandComplete); !ok {
		t.Fatalf("response %#v, want it to end in CommandComplete", msgs)
	}
	cmd := f.span(t, "CALL migrate.create_model")
	if cmd.Parent().IsValid() {
		t.Errorf("command span has parent %s, want a root", cmd.Parent().SpanID())
	}
	if got := cmd.SpanContext().TraceID().String(); got == traceID {
		t.Errorf("command span in trace %s without a traceparent", got)
	}
	op := f.span(t, "migrate.create_model")
	if op.Parent().SpanID() != cmd.SpanContext().SpanID() {
		t.Errorf("engine span parent %s, want the command span %s", op.Parent().SpanID(), cmd.SpanContext().SpanID())
	}
}

// BenchmarkCallLatency compares a no-op add_field (the field exists, so
// the status stays unchanged and the command can repeat) run through the
// handler, as the proxy runs a simple Query, with the engine's Apply.
func BenchmarkCallLatency(b *testing.B) {
	const field = `{"name":"note","type":"String"}`
	f := newFixture(b)
	f.query(b, `CALL migrate.create_model('invoice', '[{"name":"id","type":"Int"}]')`)
	f.query(b, `CALL migrate.add_field('invoice', '`+field+`')`)
	op := &engine.AddField{Model: "invoice", Field: engine.FieldSpec{Name: "note", Type: engine.String}}
	ctx := context.Background()

	b.Run("handler", func(b *testing.B) {
		sql := `CALL migrate.add_field('invoice', '` + field + `')`
		b.ReportAllocs()
		for b.Loop() {
			if out := f.h.Query(ctx, f.sess, sql); !bytes.Contains(out, []byte("unchanged")) {
				b.Fatalf("response %q, want status unchanged", out)
			}
		}
	})
	b.Run("engine", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r, err := f.eng.Apply(ctx, "acme", op)
			if err != nil || r.Status != engine.Unchanged {
				b.Fatalf("Apply: %v, %v, want unchanged", r.Status, err)
			}
		}
	})
}
