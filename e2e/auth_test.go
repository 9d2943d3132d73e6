package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPasswordAuth checks that the proxy relays each password exchange and
// PostgreSQL's verdict on it.
func TestPasswordAuth(t *testing.T) {
	tn := newTenants(t, "acme")
	p := startProxy(t, tn.config(""))
	for _, user := range []string{scramUser, md5User, cleartextUser} {
		t.Run(user, func(t *testing.T) {
			conn := p.connect(t, user, userPassword, "acme")
			wantUsers(t, conn, user, "acme")

			refused, err := pgx.Connect(testContext(t), p.url(user, userPassword+"x", "acme"))
			if err == nil {
				refused.Close(context.Background())
			}
			pgErr := wantPgError(t, err, "28P01")
			if want := fmt.Sprintf("password authentication failed for user %q", user); pgErr.Message != want {
				t.Fatalf("got %s %q, want %q", pgErr.Severity, pgErr.Message, want)
			}
		})
	}
}

func TestTLSClient(t *testing.T) {
	tn := newTenants(t, "acme")
	certFile, keyFile := selfSignedCert(t)
	p := startProxy(t, tn.config(fmt.Sprintf("tls:\n  cert_file: %q\n  key_file: %q\n", certFile, keyFile)))

	t.Run("pgx require", func(t *testing.T) {
		conn := p.connect(t, "postgres", "", "acme", "sslmode", "require")
		wantTLSToProxyOnly(t, conn, tn.db)
	})
	t.Run("pgx scram verify-full", func(t *testing.T) {
		conn := p.connect(t, scramUser, userPassword, "acme", "sslmode", "verify-full", "sslrootcert", certFile)
		wantTLSToProxyOnly(t, conn, tn.db)
		wantUsers(t, conn, scramUser, "acme")
	})
	t.Run("pgx cancel", func(t *testing.T) {
		// pgx sends its CancelRequest over TLS when the session uses TLS.
		conn := connectConfig(t, p.url("postgres", "", "acme", "sslmode", "require"), cancelOnContext)
		wantPgError(t, sleepCancelled(t, conn, tn.db), "57014")
	})
	t.Run("psql require", func(t *testing.T) {
		// psql's backend is looked at while it waits for a lock the test
		// holds.
		const waiting = "SELECT pg_advisory_lock_shared(4711)"
		holder := directConn(t, tn.db)
		mustExec(t, holder, "SELECT pg_advisory_lock(4711)")
		cmd := psqlCommand(testContext(t), p.url(scramUser, "", "acme", "sslmode", "require"), userPassword,
			"-At", "-c", `\conninfo`, "-c", waiting)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pids := waitRunning(t, tn.db, waiting)
		upstreamTLS := backendSSL(t, tn.db, pids[0])
		mustExec(t, holder, "SELECT pg_advisory_unlock(4711)")
		if err := cmd.Wait(); err != nil {
			t.Fatalf("psql: %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "SSL connection") || upstreamTLS {
			t.Fatalf("psql printed %q, upstream TLS %v; want an SSL connection to the proxy and a plain one upstream", out.String(), upstreamTLS)
		}
	})
}

// wantTLSToProxyOnly checks that conn speaks TLS to the proxy while the
// proxy's session upstream, on database, is plain.
func wantTLSToProxyOnly(t testing.TB, conn *pgx.Conn, database string) {
	t.Helper()
	if c, ok := conn.PgConn().Conn().(*tls.Conn); !ok {
		t.Fatalf("client connection is a %T, want *tls.Conn", conn.PgConn().Conn())
	} else if !c.ConnectionState().HandshakeComplete {
		t.Fatal("TLS handshake not complete")
	}
	if backendSSL(t, database, backendPID(t, conn)) {
		t.Fatal("upstream session uses TLS, want plain")
	}
}

// backendSSL reports whether the backend pid of database speaks TLS to its
// client. The superuser looks: a tenant session's role is not the user its
// backend belongs to, so pg_stat_ssl hides that backend from the session.
func backendSSL(t testing.TB, database string, pid int32) bool {
	t.Helper()
	return queryValue[bool](t, directConn(t, database), "SELECT ssl FROM pg_catalog.pg_stat_ssl WHERE pid = $1", pid)
}

// wantUsers fails t unless conn's session was opened by the login user
// session and runs with the privileges of role current.
func wantUsers(t testing.TB, conn *pgx.Conn, session, current string) {
	t.Helper()
	var gotSession, gotCurrent string
	if err := conn.QueryRow(testContext(t), "SELECT session_user, current_user").Scan(&gotSession, &gotCurrent); err != nil {
		t.Fatal(err)
	}
	if gotSession != session || gotCurrent != current {
		t.Fatalf("session_user = %q, current_user = %q; want %q, %q", gotSession, gotCurrent, session, current)
	}
}

// selfSignedCert writes a self-signed certificate for 127.0.0.1 and its key
// as PEM files and returns their names.
func selfSignedCert(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pgmigrate-proxy test"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	return certFile, keyFile
}
