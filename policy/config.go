package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration of a pgmigrate-proxy process. The zero
// value is not useful: start from Default and override.
type Config struct {
	// Listen is the address clients connect to.
	Listen string `yaml:"listen"`
	// AdminListen serves /healthz, /readyz and /metrics. Empty disables it.
	AdminListen string `yaml:"admin_listen"`
	// TLS enables TLS for clients that ask for it with SSLRequest.
	TLS TLS `yaml:"tls"`
	// Limits protects the proxy and its other sessions from one client.
	Limits Limits `yaml:"limits"`
	// DrainTimeout is how long SIGTERM waits for sessions to end on their own
	// before closing them.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `yaml:"log_level"`
	// Upstreams are the PostgreSQL clusters; the DSN carries the engine's
	// (owner) credentials and names the upstream's database.
	Upstreams []Upstream `yaml:"upstreams"`
	// Tenants are the statically configured orgs.
	Tenants []TenantConfig `yaml:"tenants"`
	// Policy says who may do what.
	Policy Rules `yaml:"policy"`
	// Engine tunes the migration engine that runs migrate.* commands.
	Engine Engine `yaml:"engine"`
	// Registry tunes how the upstreams' tenant catalogs are followed.
	Registry RegistryConfig `yaml:"registry"`
}

// RegistryConfig tunes the tenant registry (see package registry).
type RegistryConfig struct {
	// Refresh is how often each upstream's catalog is reloaded whole, in
	// case a notification was lost.
	Refresh time.Duration `yaml:"refresh"`
	// MissTTL is how long an org found in no catalog is answered 3D000
	// without asking the catalogs again.
	MissTTL time.Duration `yaml:"miss_ttl"`
}

// TLS names the certificate and key presented to clients.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Limits bound what one client can cost.
type Limits struct {
	// StartupTimeout bounds the time from accept to the end of
	// authentication; a client that stays silent is dropped.
	StartupTimeout time.Duration `yaml:"startup_timeout"`
	// MaxMessageSize is the largest protocol message, in bytes, accepted
	// from a client.
	MaxMessageSize int `yaml:"max_message_size"`
	// MaxClientConns is the most client connections served at once.
	MaxClientConns int `yaml:"max_client_conns"`
}

// Upstream is one PostgreSQL cluster and database.
type Upstream struct {
	Name string `yaml:"name"`
	DSN  string `yaml:"dsn"`
}

// TenantConfig is a tenant as written in the config file; empty fields take
// their defaults in Validate.
type TenantConfig struct {
	Org      string `yaml:"org"`
	Upstream string `yaml:"upstream"`
	Database string `yaml:"database"`
	Schema   string `yaml:"schema"`
}

// Rules is the authorisation policy.
type Rules struct {
	// Admins may open unscoped sessions on an upstream's real database.
	Admins []string `yaml:"admins"`
	// Migrators may run mutating migrate commands ("*" for everyone,
	// "role:NAME" for members of a role).
	Migrators []string `yaml:"migrators"`
	// AllowDrop permits drop_field and drop_model.
	AllowDrop bool `yaml:"allow_drop"`
	// RawDDL is allow, deny or audit, for DDL sent by tenant sessions.
	RawDDL string `yaml:"raw_ddl"`
}

// The values of Rules.RawDDL.
const (
	// RawDDLAllow lets tenant sessions send DDL, as far as PostgreSQL's
	// privileges allow.
	RawDDLAllow = "allow"
	// RawDDLDeny refuses DDL statements of tenant sessions in the proxy,
	// and takes CREATE on the tenant schema from the tenant role.
	RawDDLDeny = "deny"
	// RawDDLAudit lets DDL through and records each statement in the
	// tenant's history and the log.
	RawDDLAudit = "audit"
)

// Engine tunes the migration engine.
type Engine struct {
	LockTimeout      time.Duration `yaml:"lock_timeout"`
	StatementTimeout time.Duration `yaml:"statement_timeout"`
	// CommandTimeout is the deadline of one migrate command; a command is
	// cancelled earlier when its client cancels it or leaves.
	CommandTimeout time.Duration `yaml:"command_timeout"`
	// AcquireTimeout bounds the wait for a connection of the engine's pool.
	AcquireTimeout time.Duration `yaml:"acquire_timeout"`
	// FanoutConcurrency is how many tenants of one upstream org => '*'
	// migrates at once.
	FanoutConcurrency int   `yaml:"fanout_concurrency"`
	Retry             Retry `yaml:"retry"`
}

// Retry is the engine's retry budget for transient errors.
type Retry struct {
	MaxAttempts int           `yaml:"max_attempts"`
	Delay       time.Duration `yaml:"delay"`
	MaxDelay    time.Duration `yaml:"max_delay"`
}

// Default returns the configuration used where the file and flags say
// nothing.
func Default() Config {
	return Config{
		Listen:       "127.0.0.1:6432",
		AdminListen:  "127.0.0.1:9464",
		DrainTimeout: 30 * time.Second,
		LogLevel:     "info",
		Limits: Limits{
			StartupTimeout: 10 * time.Second,
			MaxMessageSize: 64 << 20,
			MaxClientConns: 1000,
		},
		Policy: Rules{
			Migrators: []string{"*"},
			AllowDrop: true,
			RawDDL:    RawDDLAllow,
		},
		Engine: Engine{
			LockTimeout:       time.Second,
			CommandTimeout:    10 * time.Minute,
			AcquireTimeout:    5 * time.Second,
			FanoutConcurrency: 8,
			Retry:             Retry{MaxAttempts: 5, Delay: 200 * time.Millisecond, MaxDelay: 5 * time.Second},
		},
		Registry: RegistryConfig{Refresh: time.Minute, MissTTL: 5 * time.Second},
	}
}

// Load reads the YAML file at path over cfg, expanding ${VAR} from getenv.
// Unknown keys are errors.
func Load(path string, cfg *Config, getenv func(string) string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return Parse(data, cfg, getenv)
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Parse decodes YAML over cfg, expanding ${VAR} from getenv first.
func Parse(data []byte, cfg *Config, getenv func(string) string) error {
	var missing []string
	data = envRef.ReplaceAllFunc(data, func(ref []byte) []byte {
		name := string(envRef.FindSubmatch(ref)[1])
		v := getenv(name)
		if v == "" {
			missing = append(missing, name)
		}
		return []byte(v)
	})
	if len(missing) > 0 {
		return fmt.Errorf("environment variable %s is not set", missing[0])
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(cfg)
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for i, msg := range te.Errors {
			var line int
			if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr == nil {
				if key := keyAt(&root, line, ""); key != "" {
					te.Errors[i] = key + ": " + msg
				}
			}
		}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// keyAt returns the path (tenants[0].org) of the deepest key or sequence
// item at line, so that a decoding error can name its key.
func keyAt(n *yaml.Node, line int, path string) string {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) > 0 {
			return keyAt(n.Content[0], line, path)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if found := keyAt(v, line, p); found != "" {
				return found
			}
			if k.Line == line {
				return p
			}
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			if found := keyAt(item, line, fmt.Sprintf("%s[%d]", path, i)); found != "" {
				return found
			}
		}
	case yaml.ScalarNode:
		if n.Line == line {
			return path
		}
	}
	return ""
}
