package e2e

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// collector is an OTLP/HTTP trace receiver keeping every span it gets.
type collector struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	resp, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Write(resp)
}

func (c *collector) find(name string) *tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.spans {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// TestMigrateTraceContinuesClientTrace checks that a migrate command sent
// with a sqlcommenter traceparent is exported as a span of the client's
// trace, with the engine's spans beneath it.
func TestMigrateTraceContinuesClientTrace(t *testing.T) {
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	tn := newTenants(t, "acme")
	p := startProxyEnv(t, tn.config(""), []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + srv.URL, "OTEL_BSP_SCHEDULE_DELAY=50"})
	conn := p.connect(t, "postgres", "", "acme")
	const traceID, parentID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	_, err := conn.Exec(testContext(t), "/*traceparent='00-"+traceID+"-"+parentID+"-01'*/ CALL migrate.create_model('invoice', '[{\"name\":\"id\",\"type\":\"Int\"}]')")
	if err != nil {
		t.Fatal(err)
	}
	var call, op *tracepb.Span
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if call, op = col.find("CALL migrate.create_model"), col.find("migrate.create_model"); call != nil && op != nil {
			break
		}
	}
	if call == nil || op == nil {
		t.Fatalf("spans not exported: command %v, operation %v", call, op)
	}
	if hex.EncodeToString(call.TraceId) != traceID || hex.EncodeToString(call.ParentSpanId) != parentID {
		t.Errorf("command span in trace %x under %x, want %s under %s", call.TraceId, call.ParentSpanId, traceID, parentID)
	}
	if string(op.ParentSpanId) != string(call.SpanId) || string(op.TraceId) != string(call.TraceId) {
		t.Errorf("engine span is not the command span's child")
	}
}
