package e2e

import (
	"context"
	"testing"
)

func TestSearchPathIsTenantSchema(t *testing.T) {
	tn := newTenants(t, "acme-corp")
	p := startProxy(t, tn.config(""))
	conn := p.connect(t, "postgres", "", "acme-corp")
	var sp string
	if err := conn.QueryRow(context.Background(), "SHOW search_path").Scan(&sp); err != nil {
		t.Fatal(err)
	}
	if sp != `"acme-corp"` {
		t.Fatalf("search_path = %s", sp)
	}
}
