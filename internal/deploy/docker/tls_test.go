package docker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A tcp Docker host: plaintext is refused unless allowed; tls-verify
// without certificates is refused; with cert-path, tls-verify decides
// whether the engine's certificate is checked against ca.pem — an engine
// with another certificate is refused with it and reached without it.
func TestTCPHostTLS(t *testing.T) {
	engine := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.47")
		w.Write([]byte("OK"))
	}))
	defer engine.Close()
	host := "tcp://" + engine.Listener.Addr().String()

	if _, err := New(Options{Host: host}); err == nil || !strings.Contains(err.Error(), "plaintext TCP refused") {
		t.Errorf("plaintext tcp: %v, want refused", err)
	}
	if tg, err := New(Options{Host: host, AllowPlaintext: true}); err != nil {
		t.Errorf("plaintext tcp with allow-plaintext: %v", err)
	} else {
		tg.Close()
	}
	if _, err := New(Options{Host: host, TLSVerify: true}); err == nil || !strings.Contains(err.Error(), "tls-verify needs cert-path") {
		t.Errorf("tls-verify without cert-path: %v", err)
	}
	if _, err := New(Options{Host: host, CertPath: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "ca.pem") {
		t.Errorf("empty cert-path: %v, want the missing ca.pem named", err)
	}

	ping := func(certPath string, verify bool) error {
		t.Helper()
		tg, err := New(Options{Host: host, CertPath: certPath, TLSVerify: verify})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		defer tg.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return tg.Ping(ctx)
	}
	other := certDir(t, selfSigned(t)) // a CA that did not sign the engine's certificate
	if err := ping(other, true); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("tls-verify against another CA: %v, want a certificate error", err)
	}
	if err := ping(other, false); err != nil {
		t.Errorf("TLS without tls-verify: %v", err)
	}
	if err := ping(certDir(t, engine.Certificate().Raw), true); err != nil {
		t.Errorf("tls-verify against the engine's CA: %v", err)
	}
}

// certDir writes cert-path: ca.pem (caDER) and a client cert.pem/key.pem.
func certDir(t *testing.T, caDER []byte) string {
	t.Helper()
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "client"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	for name, b := range map[string]*pem.Block{
		"ca.pem": {Type: "CERTIFICATE", Bytes: caDER}, "cert.pem": {Type: "CERTIFICATE", Bytes: der}, "key.pem": {Type: "EC PRIVATE KEY", Bytes: kb},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func selfSigned(t *testing.T) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
