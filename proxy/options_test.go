package proxy

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestSplitOptions(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"-c a=b", []string{"-c", "a=b"}},
		{`-c application_name=a\ b  --geqo=off`, []string{"-c", "application_name=a b", "--geqo=off"}},
		{`-c x=a\\b`, []string{"-c", `x=a\b`}},
		{"\t-c\n a=1 ", []string{"-c", "a=1"}},
	}
	for _, tt := range tests {
		if got := splitOptions(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("splitOptions(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStartupSettings(t *testing.T) {
	tests := []struct {
		params map[string]string
		want   []setting
		org    string
	}{
		{map[string]string{"user": "u", "database": "d"}, nil, ""},
		{map[string]string{"options": "-c pgmigrate.org=acme"}, nil, "acme"},
		{map[string]string{"options": "-cpgmigrate.org=acme"}, nil, "acme"},
		{map[string]string{"options": "--pgmigrate.org=acme"}, nil, "acme"},
		{map[string]string{"options": "-c PGMIGRATE.ORG=acme"}, nil, "acme"},
		{map[string]string{"options": "-c work_mem=64MB -c pgmigrate.org=acme -c statement_timeout=5s"},
			[]setting{{"work_mem", "64MB"}, {"statement_timeout", "5s"}}, "acme"},
		{map[string]string{"DateStyle": "ISO", "_pq_.x": "1"}, []setting{{"DateStyle", "ISO"}}, ""},
		{map[string]string{"search_path": "globex"}, []setting{{"search_path", "globex"}}, ""},
	}
	for _, tt := range tests {
		got, org, err := startupSettings(tt.params)
		if err != nil || !slices.Equal(got, tt.want) || org != tt.org {
			t.Errorf("startupSettings(%v) = %v, %q, %v; want %v, %q", tt.params, got, org, err, tt.want, tt.org)
		}
	}
}

func TestStartupSettingsRefused(t *testing.T) {
	for _, params := range []map[string]string{
		{"role": "globex"},
		{"ROLE": "globex"},
		{"session_authorization": "postgres"},
		{"replication": "database"},
		{"options": "-c role=globex"},
		{"options": "--session_authorization=postgres"},
		{"options": "-crole=globex"},
		{"options": "-c shared_preload_libraries=x"},
		{"options": "-B 100"},
		{"not_a_setting": "1"},
	} {
		_, _, err := startupSettings(params)
		var f *fatal
		if !errors.As(err, &f) || f.code != "42501" {
			t.Errorf("startupSettings(%v): %v, want a 42501 refusal", params, err)
		}
	}
	for _, options := range []string{"-c work_mem", "-c"} {
		_, _, err := startupSettings(map[string]string{"options": options})
		if f := (*fatal)(nil); !errors.As(err, &f) || f.code != "42601" {
			t.Errorf("options %q: %v, want 42601", options, err)
		}
	}
}

func FuzzStartupSettings(f *testing.F) {
	for _, s := range []string{"-c a=b", `-c x=a\ b\\c`, "--pgmigrate.org=x -c role=y", "\t-c\n work_mem=1 ", "-crole=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, options string) {
		settings, _, err := startupSettings(map[string]string{"options": options})
		if err != nil {
			return
		}
		for _, s := range settings {
			if !clientSettings[strings.ToLower(s.name)] {
				t.Fatalf("options %q set %q", options, s.name)
			}
		}
	})
}
