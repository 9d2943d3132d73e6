package engine

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// CreateTenant provisions a tenant, or adopts one whose schema exists
// without changing any data. It makes what is missing of:
//
//   - the schema, owned by the engine's role;
//   - the tenant role, named like the org (NOLOGIN; grant it to the
//     tenant's users); a role of that name that exists is taken as it is
//     if it is NOLOGIN, a member of no role, not the engine's role nor a
//     predefined one, has none of SUPERUSER, CREATEROLE, CREATEDB,
//     REPLICATION and BYPASSRLS, and owns or holds nothing outside the
//     tenant's schema; any other gives UnsafeRoleError (42501)
//     and nothing changes;
//   - the role's USAGE on the schema, and CREATE unless NoCreate (with
//     NoCreate, a CREATE it holds is revoked);
//   - the engine role's default privileges in the schema, which give the
//     role SELECT, INSERT, UPDATE, DELETE, TRUNCATE and REFERENCES on every
//     table the engine creates there (USAGE, SELECT and UPDATE on
//     sequences), and the same privileges on the tables of the schema the
//     engine owns already;
//   - the registration in pgmigrate.tenants.
//
// A tenant with all of it in place is unchanged.
//
// With Login it also makes the login role <org>.login, a member of the
// tenant role, with a random password that the result returns this once.
// PostgreSQL gets only the password's SCRAM-SHA-256 verifier, computed by
// the engine, and results, history, logs and spans show it redacted. A
// login role that exists is left as it is, and no password is returned,
// if it can log in and is a member of the tenant role only, and is
// neither the engine's role nor has any of those attributes; any other
// gives UnsafeRoleError.
type CreateTenant struct {
	Org string
	// Schema is the schema of an org not registered yet; "" means the
	// schema named like the org.
	Schema string
	// Login makes the tenant's login role.
	Login bool
	// NoCreate keeps the tenant role from creating objects in its schema
	// (raw_ddl: deny).
	NoCreate bool

	// secret is the login role's password, drawn by Validate, so that
	// every attempt of one Apply offers the same.
	secret secret
}

var _ Operation = (*CreateTenant)(nil)

func (op *CreateTenant) Kind() string { return "create_tenant" }

func (op *CreateTenant) Target() (model, field string) { return "", "" }

func (op *CreateTenant) unregisteredSchema() string {
	if op.Schema == "" {
		return op.Org
	}
	return op.Schema
}

// Validate checks the org and schema names and, with Login, the login
// role's length, and draws the login role's password.
func (op *CreateTenant) Validate(*Options) error {
	if err := checkOrg(op.Org); err != nil {
		return err
	}
	if s := op.unregisteredSchema(); !orgName.MatchString(s) || systemSchema(s) {
		return &InvalidSpecError{Reason: strconv.Quote(s) + " cannot be a tenant's schema"}
	}
	if !op.Login {
		return nil
	}
	if login := loginName(op.Org); len(login) > maxIdentifierLength {
		return &InvalidSpecError{Reason: fmt.Sprintf("the login role name %q is longer than %d bytes", login, maxIdentifierLength)}
	}
	var err error
	op.secret, err = newSecret()
	return err
}

func (op *CreateTenant) Plan(s *State) (*Plan, error) {
	if err := s.checkRoles(op.Login); err != nil {
		return nil, err
	}
	schema, role := ident(s.Schema), ident(op.Org)
	var statements []string
	add := func(sql string) { statements = append(statements, sql) }
	if !s.SchemaExists {
		add("CREATE SCHEMA " + schema)
	}
	if s.Role == nil {
		add("CREATE ROLE " + role + " NOLOGIN")
	}
	g := s.Grants
	switch {
	case !op.NoCreate && !(g.Usage && g.Create):
		add("GRANT USAGE, CREATE ON SCHEMA " + schema + " TO " + role)
	case op.NoCreate && !g.Usage:
		add("GRANT USAGE ON SCHEMA " + schema + " TO " + role)
	}
	if op.NoCreate && g.Create {
		add("REVOKE CREATE ON SCHEMA " + schema + " FROM " + role)
	}
	if !g.DefaultTables {
		add("ALTER DEFAULT PRIVILEGES IN SCHEMA " + schema + " GRANT " + strings.Join(tablePrivileges, ", ") + " ON TABLES TO " + role)
	}
	if !g.DefaultSequences {
		add("ALTER DEFAULT PRIVILEGES IN SCHEMA " + schema + " GRANT " + strings.Join(sequencePrivileges, ", ") + " ON SEQUENCES TO " + role)
	}
	for _, t := range g.Ungranted {
		add(grantTable(s.Schema, t, op.Org))
	}
	p := &Plan{AddTenant: true}
	var hidden map[int]string
	if op.Login {
		p.Login = loginName(op.Org)
		if s.Login == nil {
			create := "CREATE ROLE " + ident(p.Login) + " LOGIN IN ROLE " + role + " PASSWORD "
			hidden = map[int]string{len(statements): create + quoteLiteral(op.secret.verifier)}
			add(create + redacted)
			p.Password = op.secret.password
		}
	}
	if len(statements) > 0 {
		p.Phases = []Phase{{Statements: statements, Hidden: hidden}}
	}
	return p, nil
}

// loginName is the name of the org's login role. No org name holds a '.',
// so it is never the name of another org's tenant role.
func loginName(org string) string { return org + ".login" }

// redacted stands for a password in the statements shown.
const redacted = "'********'"

// secret is a login role's password and the SCRAM-SHA-256 verifier that
// PostgreSQL stores for it.
type secret struct{ password, verifier string }

// scramIterations and scramSaltLen are PostgreSQL's defaults for
// SCRAM-SHA-256.
const (
	scramIterations = 4096
	scramSaltLen    = 16
)

// newSecret draws a password of 128 random bits, as URL-safe text, and
// computes its verifier with a random salt.
func newSecret() (secret, error) {
	password := rand.Text()
	salt := make([]byte, scramSaltLen)
	rand.Read(salt)
	verifier, err := scramVerifier(password, salt, scramIterations)
	return secret{password, verifier}, err
}

// scramVerifier is PostgreSQL's SCRAM-SHA-256 verifier of password (RFC
// 5802, RFC 7677): SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>,
// each in base64. The password is ASCII, which SASLprep leaves as it is.
func scramVerifier(password string, salt []byte, iterations int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	storedKey := sha256.Sum256(hmacSHA256(salted, "Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(storedKey[:]), b64(hmacSHA256(salted, "Server Key"))), nil
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// systemSchema reports whether schema is PostgreSQL's or the engine's own,
// never a tenant's.
func systemSchema(schema string) bool {
	return schema == "pgmigrate" || schema == "information_schema" || strings.HasPrefix(schema, "pg_")
}
