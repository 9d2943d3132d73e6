package intercept

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgmigrate/pgmigrate-proxy/policy"
)

func TestAuditText(t *testing.T) {
	if got := auditText([]byte("DROP TABLE t")); got != "DROP TABLE t" {
		t.Errorf("short statement kept as %q", got)
	}
	long := "DROP TABLE t /*" + strings.Repeat("x", 2*MaxAuditText) + "*/"
	want := long[:MaxAuditText] + "... (8209 bytes)"
	if got := auditText([]byte(long)); got != want {
		t.Errorf("long statement kept as %.40q...%q, want %q at the end", got, got[len(got)-20:], want[len(want)-20:])
	}
	// SJIS bytes are not UTF-8: they are replaced, so that the text can be
	// stored and logged.
	if got := auditText([]byte("CREATE TABLE \x95\x5c (id int)")); got != "CREATE TABLE \uFFFD\\ (id int)" {
		t.Errorf("non-UTF-8 statement kept as %q", got)
	}
}

// TestAuditFull: when the org's queue of audit records, or all queues
// together, are full, Audit refuses a statement, which is then answered
// with 53400 instead of going unrecorded.
func TestAuditFull(t *testing.T) {
	h := &Handler{Rules: func() policy.Rules { return policy.Rules{RawDDL: policy.RawDDLAudit} }}
	full := &auditQueue{pending: make([]auditRecord, maxOrgAudits)}
	h.audits, h.auditing = maxOrgAudits, map[string]*auditQueue{"acme": full}
	sql := []byte("CREATE TABLE t (id int)")
	if h.Take(sql, true) != Audit {
		t.Fatal("DDL of a tenant session under raw_ddl: audit is not audited")
	}
	if h.Audit(context.Background(), Session{Route: policy.Route{Org: "acme"}}, sql) {
		t.Fatal("Audit queued a record with the org's queue full")
	}
	h.audits = maxAudits
	if h.Audit(context.Background(), Session{Route: policy.Route{Org: "globex"}}, sql) {
		t.Fatal("Audit queued a record with every queue full")
	}
	msgs := decode(t, h.Query(context.Background(), Session{}, string(sql)))
	if e, ok := msgs[0].(*pgproto3.ErrorResponse); !ok || e.Code != "53400" {
		t.Fatalf("answer %#v, want ErrorResponse 53400", msgs[0])
	}
}
