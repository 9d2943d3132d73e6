package policy

import (
	"context"
	"errors"
	"testing"
)

func newTestRouter(t *testing.T, yaml string) *Router {
	t.Helper()
	cfg, err := parse(t, yaml, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRouter(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const routed = `
upstreams:
  - name: main
    dsn: postgres://pgmigrate@127.0.0.1:5432/crm
  - name: shard2
    dsn: postgres://pgmigrate@10.0.0.2:5433/crm2?sslmode=disable
tenants:
  - org: acme-corp
  - org: beta
    upstream: shard2
    database: beta
    schema: public
policy:
  admins: [root]
`

func TestRoute(t *testing.T) {
	r := newTestRouter(t, routed)
	tests := []struct {
		name string
		req  Request
		want Route
		code string
	}{
		{"database names org", Request{User: "alice", Database: "acme-corp"}, Route{Org: "acme-corp", Database: "crm", Schema: "acme-corp"}, ""},
		{"database-per-tenant", Request{User: "alice", Database: "beta"}, Route{Org: "beta", Database: "beta", Schema: "public"}, ""},
		{"option names org", Request{User: "alice", Database: "crm", Org: "acme-corp"}, Route{Org: "acme-corp", Database: "crm", Schema: "acme-corp"}, ""},
		{"option and same database", Request{User: "alice", Database: "acme-corp", Org: "acme-corp"}, Route{Org: "acme-corp", Database: "crm", Schema: "acme-corp"}, ""},
		{"option without database", Request{User: "alice", Org: "beta"}, Route{Org: "beta", Database: "beta", Schema: "public"}, ""},
		{"option disagrees", Request{User: "alice", Database: "beta", Org: "acme-corp"}, Route{}, "22023"},
		{"unknown org", Request{User: "alice", Database: "nope"}, Route{}, "3D000"},
		{"unknown org option", Request{User: "alice", Database: "crm", Org: "nope"}, Route{}, "3D000"},
		{"invalid org name", Request{User: "alice", Database: "Acme Corp"}, Route{}, "3D000"},
		{"database defaults to user", Request{User: "beta"}, Route{Org: "beta", Database: "beta", Schema: "public"}, ""},
		{"admin unscoped", Request{User: "root", Database: "crm2"}, Route{Database: "crm2"}, ""},
		{"non-admin real database", Request{User: "alice", Database: "crm"}, Route{}, "3D000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Route(context.Background(), tt.req)
			if tt.code != "" {
				var st interface{ SQLState() string }
				if !errors.As(err, &st) || st.SQLState() != tt.code {
					t.Fatalf("error %v, want SQLSTATE %s", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got.Upstream = nil
			if got != tt.want {
				t.Fatalf("route %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRouteTargets(t *testing.T) {
	r := newTestRouter(t, routed)
	got, err := r.Route(context.Background(), Request{User: "alice", Database: "beta"})
	if err != nil {
		t.Fatal(err)
	}
	up := got.Upstream
	if up.Name != "shard2" || up.Network != "tcp" || up.Address != "10.0.0.2:5433" || up.TLS != nil {
		t.Fatalf("upstream %+v", up)
	}
	main := r.Upstreams()[0]
	if main.TLS == nil || !main.TLSOptional {
		t.Fatalf("default sslmode should be prefer: %+v", main)
	}
}

func TestUpdateReplacesTenants(t *testing.T) {
	r := newTestRouter(t, routed)
	cfg, err := parse(t, base+"  - org: gamma\n", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Update(&cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Route(context.Background(), Request{User: "a", Database: "gamma"}); err != nil {
		t.Fatalf("new tenant: %v", err)
	}
	if _, err := r.Route(context.Background(), Request{User: "a", Database: "beta"}); err == nil {
		t.Fatal("removed tenant still routed")
	}
}
