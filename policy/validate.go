package policy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// orgName is the rule every org name follows.
var orgName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidOrg reports whether name is a well-formed org name.
func ValidOrg(name string) bool { return orgName.MatchString(name) }

// KeyError is a configuration problem, named by its key path.
type KeyError struct {
	Key    string
	Reason string
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Reason }

func keyErr(key, format string, args ...any) error {
	return &KeyError{Key: key, Reason: fmt.Sprintf(format, args...)}
}

// Validate checks cfg and fills in the defaults that depend on other keys:
// a tenant's upstream (the first), database (the upstream's) and schema (the
// org). It returns the first problem found as a *KeyError.
func (cfg *Config) Validate() error {
	if cfg.Listen == "" {
		return keyErr("listen", "must not be empty")
	}
	if (cfg.TLS.CertFile == "") != (cfg.TLS.KeyFile == "") {
		return keyErr("tls", "cert_file and key_file must be set together")
	}
	if cfg.Limits.StartupTimeout <= 0 {
		return keyErr("limits.startup_timeout", "must be positive")
	}
	if cfg.Limits.MaxMessageSize < 1024 || cfg.Limits.MaxMessageSize > 1<<30 {
		return keyErr("limits.max_message_size", "must be between 1024 and 1073741824 bytes")
	}
	if cfg.Limits.MaxClientConns <= 0 {
		return keyErr("limits.max_client_conns", "must be positive")
	}
	if cfg.DrainTimeout < 0 {
		return keyErr("drain_timeout", "must not be negative")
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, cfg.LogLevel) {
		return keyErr("log_level", "%q is not one of debug, info, warn, error", cfg.LogLevel)
	}
	if err := cfg.validateUpstreams(); err != nil {
		return err
	}
	if err := cfg.validateTenants(); err != nil {
		return err
	}
	if !slices.Contains([]string{RawDDLAllow, RawDDLDeny, RawDDLAudit}, cfg.Policy.RawDDL) {
		return keyErr("policy.raw_ddl", "%q is not one of allow, deny, audit", cfg.Policy.RawDDL)
	}
	switch {
	case cfg.Registry.Refresh <= 0:
		return keyErr("registry.refresh", "must be positive")
	case cfg.Registry.MissTTL < 0:
		return keyErr("registry.miss_ttl", "must not be negative")
	}
	return cfg.Engine.validate()
}

func (cfg *Config) validateUpstreams() error {
	if len(cfg.Upstreams) == 0 {
		return keyErr("upstreams", "at least one upstream is required")
	}
	seen := map[string]bool{}
	for i, u := range cfg.Upstreams {
		key := fmt.Sprintf("upstreams[%d]", i)
		if u.Name == "" {
			return keyErr(key+".name", "must not be empty")
		}
		if seen[u.Name] {
			return keyErr(key+".name", "%q is used twice", u.Name)
		}
		seen[u.Name] = true
		if _, err := parseUpstream(u); err != nil {
			return keyErr(key+".dsn", "%v", err)
		}
	}
	return nil
}

func (cfg *Config) validateTenants() error {
	seen := map[string]bool{}
	for i := range cfg.Tenants {
		t := &cfg.Tenants[i]
		key := fmt.Sprintf("tenants[%d]", i)
		if !ValidOrg(t.Org) {
			return keyErr(key+".org", "%q is not a valid org name (%s)", t.Org, orgName)
		}
		if seen[t.Org] {
			return keyErr(key+".org", "%q is listed twice", t.Org)
		}
		seen[t.Org] = true
		if t.Upstream == "" {
			t.Upstream = cfg.Upstreams[0].Name
		}
		i := slices.IndexFunc(cfg.Upstreams, func(u Upstream) bool { return u.Name == t.Upstream })
		if i < 0 {
			return keyErr(key+".upstream", "no upstream is named %q", t.Upstream)
		}
		if t.Database == "" {
			up, _ := parseUpstream(cfg.Upstreams[i])
			t.Database = up.Database
		}
		if t.Schema == "" {
			t.Schema = t.Org
		}
		if strings.ContainsRune(t.Schema, 0) || strings.ContainsRune(t.Database, 0) {
			return keyErr(key, "database and schema must not contain NUL")
		}
	}
	return nil
}

func (e Engine) validate() error {
	switch {
	case e.LockTimeout <= 0:
		return keyErr("engine.lock_timeout", "must be positive")
	case e.StatementTimeout < 0:
		return keyErr("engine.statement_timeout", "must not be negative")
	case e.CommandTimeout < 0:
		return keyErr("engine.command_timeout", "must not be negative")
	case e.AcquireTimeout <= 0:
		return keyErr("engine.acquire_timeout", "must be positive")
	case e.FanoutConcurrency < 1:
		return keyErr("engine.fanout_concurrency", "must be at least 1")
	case e.Retry.MaxAttempts < 1:
		return keyErr("engine.retry.max_attempts", "must be at least 1")
	case e.Retry.Delay < 0:
		return keyErr("engine.retry.delay", "must not be negative")
	case e.Retry.MaxDelay < e.Retry.Delay:
		return keyErr("engine.retry.max_delay", "must not be less than engine.retry.delay")
	}
	return nil
}
