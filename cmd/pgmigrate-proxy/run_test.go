package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestHelpListsEveryOption(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--help"}, env(nil), &out); err != nil {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{
		"-config", "-listen", "-admin-listen", "-upstream", "-log-level",
		"PGMIGRATE_CONFIG", "PGMIGRATE_LISTEN", "PGMIGRATE_ADMIN_LISTEN", "PGMIGRATE_UPSTREAM", "PGMIGRATE_LOG_LEVEL",
		"limits.max_client_conns", "tenants[].schema", "SIGHUP",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help does not mention %s", want)
		}
	}
}

func TestPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(file, []byte("listen: 127.0.0.1:1\nadmin_listen: 127.0.0.1:2\nlog_level: warn\nupstreams:\n  - {name: a, dsn: postgres://h/db}\n"), 0o600)
	o, err := parseFlags([]string{"--listen", "127.0.0.1:3"}, env(map[string]string{
		"PGMIGRATE_CONFIG":       file,
		"PGMIGRATE_LISTEN":       "127.0.0.1:4",
		"PGMIGRATE_ADMIN_LISTEN": "127.0.0.1:5",
	}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(o, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:3" || cfg.AdminListen != "127.0.0.1:5" || cfg.LogLevel != "warn" || cfg.Upstreams[0].Name != "a" {
		t.Fatalf("flag > env > file not respected: %+v", cfg)
	}
	o.upstream = "postgres://other/db2"
	cfg, err = loadConfig(o, env(nil))
	if err != nil || len(cfg.Upstreams) != 1 || cfg.Upstreams[0].Name != "main" {
		t.Fatalf("--upstream: %+v, %v", cfg, err)
	}
}

func TestRunRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("upstreams:\n  - {name: a, dsn: postgres://h/db}\ntenants:\n  - org: Bad_Org\n"), 0o600)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--config", bad}, "tenants[0].org"},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, "missing.yaml"},
		{[]string{"--nope"}, "flag provided but not defined"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{nil, "upstreams: at least one upstream is required"},
		{[]string{"--upstream", "postgres://h/db", "--listen", "256.0.0.1:1"}, "listen"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		err := run(context.Background(), tt.args, env(nil), &out)
		if err == nil || !strings.Contains(err.Error()+out.String(), tt.want) {
			t.Errorf("run %q: error %v (output %q), want %q", tt.args, err, out.String(), tt.want)
		}
	}
}
