package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const base = `
upstreams:
  - name: main
    dsn: postgres://pgmigrate@127.0.0.1:5432/crm
tenants:
  - org: acme-corp
`

func parse(t *testing.T, yaml string, env map[string]string) (Config, error) {
	t.Helper()
	cfg := Default()
	if err := Parse([]byte(yaml), &cfg, func(k string) string { return env[k] }); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func TestParseFillsDefaults(t *testing.T) {
	cfg, err := parse(t, base+`
  - org: beta
    database: beta_db
    schema: public
engine:
  lock_timeout: 250ms
`, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []TenantConfig{
		{Org: "acme-corp", Upstream: "main", Database: "crm", Schema: "acme-corp"},
		{Org: "beta", Upstream: "main", Database: "beta_db", Schema: "public"},
	}
	for i, tc := range want {
		if cfg.Tenants[i] != tc {
			t.Errorf("tenant %d = %+v, want %+v", i, cfg.Tenants[i], tc)
		}
	}
	if cfg.Engine.LockTimeout != 250*time.Millisecond || cfg.Engine.Retry.MaxAttempts != 5 || cfg.Listen != "127.0.0.1:6432" {
		t.Errorf("defaults not kept: %+v", cfg)
	}
}

func TestParseExpandsEnvironment(t *testing.T) {
	cfg, err := parse(t, strings.Replace(base, "pgmigrate@", "pgmigrate:${PW}@", 1), map[string]string{"PW": "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cfg.Upstreams[0].DSN, "pgmigrate:s3cret@") {
		t.Errorf("dsn = %s", cfg.Upstreams[0].DSN)
	}
	_, err = parse(t, strings.Replace(base, "pgmigrate@", "pgmigrate:${NOPE}@", 1), nil)
	if err == nil || !strings.Contains(err.Error(), "NOPE") {
		t.Errorf("missing variable: %v", err)
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	tests := []struct {
		name, yaml, key string
	}{
		{"unknown key", base + "colour: blue\n", "colour"},
		{"bad duration", base + "limits:\n  startup_timeout: soon\n", "soon"},
		{"no upstreams", "tenants: []\n", "upstreams"},
		{"bad dsn", "upstreams:\n  - name: main\n    dsn: 'postgres://h/db?sslmode=bogus'\n", "upstreams[0].dsn"},
		{"dsn without database", "upstreams:\n  - name: main\n    dsn: 'host=/tmp user=x'\n", "upstreams[0].dsn"},
		{"unnamed upstream", "upstreams:\n  - dsn: postgres://h/db\n", "upstreams[0].name"},
		{"twice named upstream", "upstreams:\n  - {name: a, dsn: postgres://h/db}\n  - {name: a, dsn: postgres://h/db}\n", "upstreams[1].name"},
		{"bad org", base + "  - org: Bad Org\n", "tenants[1].org"},
		{"long org", base + "  - org: " + strings.Repeat("a", 64) + "\n", "tenants[1].org"},
		{"duplicate org", base + "  - org: acme-corp\n", "tenants[1].org"},
		{"unknown upstream", base + "  - org: b\n    upstream: other\n", "tenants[1].upstream"},
		{"tls half", base + "tls:\n  cert_file: a.pem\n", "tls"},
		{"zero startup timeout", base + "limits:\n  startup_timeout: 0s\n", "limits.startup_timeout"},
		{"tiny message size", base + "limits:\n  max_message_size: 10\n", "limits.max_message_size"},
		{"no connections", base + "limits:\n  max_client_conns: 0\n", "limits.max_client_conns"},
		{"negative drain", base + "drain_timeout: -1s\n", "drain_timeout"},
		{"log level", base + "log_level: loud\n", "log_level"},
		{"raw ddl", base + "policy:\n  raw_ddl: maybe\n", "policy.raw_ddl"},
		{"lock timeout", base + "engine:\n  lock_timeout: 0s\n", "engine.lock_timeout"},
		{"statement timeout", base + "engine:\n  statement_timeout: -1s\n", "engine.statement_timeout"},
		{"attempts", base + "engine:\n  retry: {max_attempts: 0}\n", "engine.retry.max_attempts"},
		{"delay", base + "engine:\n  retry: {delay: -1s}\n", "engine.retry.delay"},
		{"max delay", base + "engine:\n  retry: {delay: 2s, max_delay: 1s}\n", "engine.retry.max_delay"},
		{"empty listen", base + "listen: ''\n", "listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.yaml, nil)
			if err == nil || !strings.Contains(err.Error(), tt.key) {
				t.Fatalf("error %v does not name %q", err, tt.key)
			}
			var ke *KeyError
			if strings.Contains(tt.key, ".") && !errors.As(err, &ke) {
				t.Fatalf("error %v is not a *KeyError", err)
			}
		})
	}
}

func TestTypeErrorsNameTheKey(t *testing.T) {
	tests := []struct{ yaml, key string }{
		{base + "drain_timeout: soon\n", "drain_timeout: "},
		{base + "limits:\n  startup_timeout: 5\n", "limits.startup_timeout: "},
		{base + "engine:\n  retry:\n    max_attempts: many\n", "engine.retry.max_attempts: "},
		{"upstreams:\n  - name: [a]\n    dsn: postgres://h/db\n", "upstreams[0].name"},
		{"upstreams:\n  - {name: a, dsn: 'postgres://h:99999/db'}\n", "upstreams[0].dsn: "},
	}
	for _, tt := range tests {
		_, err := parse(t, tt.yaml, nil)
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("error %v does not name %q", err, tt.key)
		}
	}
}
