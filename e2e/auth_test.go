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
			if got := queryValue[string](t, conn, "SELECT current_user"); got != user {
				t.Fatalf("current_user = %q", got)
			}

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
		wantTLSToProxyOnly(t, conn)
	})
	t.Run("pgx scram verify-full", func(t *testing.T) {
		conn := p.connect(t, scramUser, userPassword, "acme", "sslmode", "verify-full", "sslrootcert", certFile)
		wantTLSToProxyOnly(t, conn)
		if got := queryValue[string](t, conn, "SELECT current_user"); got != scramUser {
			t.Fatalf("current_user = %q", got)
		}
	})
	t.Run("pgx cancel", func(t *testing.T) {
		// pgx sends its CancelRequest over TLS when the session uses TLS.
		conn := connectConfig(t, p.url("postgres", "", "acme", "sslmode", "require"), cancelOnContext)
		wantPgError(t, sleepCancelled(t, conn, tn.db), "57014")
	})
	t.Run("psql require", func(t *testing.T) {
		out := psql(t, p.url(scramUser, "", "acme", "sslmode", "require"), userPassword,
			"-At", "-c", `\conninfo`, "-c", "SELECT ssl FROM pg_catalog.pg_stat_ssl WHERE pid = pg_backend_pid()")
		if !strings.Contains(out, "SSL connection") || !strings.HasSuffix(out, "\nf\n") {
			t.Fatalf("psql printed %q, want an SSL connection to the proxy and a plain one upstream", out)
		}
	})
}

// wantTLSToProxyOnly checks that conn speaks TLS to the proxy while the
// proxy's session upstream is plain.
func wantTLSToProxyOnly(t testing.TB, conn *pgx.Conn) {
	t.Helper()
	if c, ok := conn.PgConn().Conn().(*tls.Conn); !ok {
		t.Fatalf("client connection is a %T, want *tls.Conn", conn.PgConn().Conn())
	} else if !c.ConnectionState().HandshakeComplete {
		t.Fatal("TLS handshake not complete")
	}
	if queryValue[bool](t, conn, "SELECT ssl FROM pg_catalog.pg_stat_ssl WHERE pid = pg_backend_pid()") {
		t.Fatal("upstream session uses TLS, want plain")
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
