package proxy

import (
	"slices"
	"testing"
)

func TestSplitOptions(t *testing.T) {
	tests := []struct {
		in   string
		args []string
		org  string
	}{
		{"", nil, ""},
		{"-c pgmigrate.org=acme", nil, "acme"},
		{"-cpgmigrate.org=acme", nil, "acme"},
		{"--pgmigrate.org=acme", nil, "acme"},
		{"-c PGMIGRATE.ORG=acme", nil, "acme"},
		{"-c work_mem=64MB -c pgmigrate.org=acme -c statement_timeout=5s", []string{"-c", "work_mem=64MB", "-c", "statement_timeout=5s"}, "acme"},
		{`-c application_name=a\ b  --geqo=off`, []string{"-c", "application_name=a b", "--geqo=off"}, ""},
		{`-c x=a\\b`, []string{"-c", `x=a\b`}, ""},
		{"-c", []string{"-c"}, ""},
	}
	for _, tt := range tests {
		args, org := splitOptions(tt.in)
		if !slices.Equal(args, tt.args) || org != tt.org {
			t.Errorf("splitOptions(%q) = %q, %q; want %q, %q", tt.in, args, org, tt.args, tt.org)
		}
	}
}

func FuzzOptionsRoundTrip(f *testing.F) {
	for _, s := range []string{"-c a=b", `-c x=a\ b\\c`, "--pgmigrate.org=x -c y=z", "\t-c\n a=1 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args, org := splitOptions(s)
		again, org2 := splitOptions(joinOptions(args))
		if !slices.Equal(args, again) || org2 != "" && org2 != org {
			t.Fatalf("round trip of %q: %q then %q (org %q, %q)", s, args, again, org, org2)
		}
	})
}
