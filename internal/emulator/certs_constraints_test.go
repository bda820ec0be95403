package emulator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A client that trusts the emulator's CA (microsoft.caFile left set in
// production) still accepts no certificate of it for Microsoft's hosts: the
// CA is constrained to loopback names, and its key never touches the disk.
func TestEmulatorCAIsLoopbackOnlyAndItsKeyStaysInMemory(t *testing.T) {
	dir := t.TempDir()
	p, err := newPKI(dir, nil)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(p.caPEM))
	ca, err := x509.ParseCertificate(p.server.Certificate[1])
	require.NoError(t, err)

	// Sign leaves as anyone holding the CA's key could.
	leaf := func(dns []string, ips []net.IP) *x509.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "x"}, NotBefore: time.Now().Add(-time.Hour),
			NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, DNSNames: dns, IPAddresses: ips}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, p.caKey)
		require.NoError(t, err)
		c, err := x509.ParseCertificate(der)
		require.NoError(t, err)
		return c
	}
	for _, host := range []string{"login.microsoftonline.com", "graph.microsoft.com", "contoso.crm.dynamics.com", "localhost.example.com"} {
		_, err := leaf([]string{host}, nil).Verify(x509.VerifyOptions{DNSName: host, Roots: roots})
		var inv x509.CertificateInvalidError
		require.True(t, errors.As(err, &inv), "%s: %v", host, err)
		assert.Equal(t, x509.CANotAuthorizedForThisName, inv.Reason, host)
	}
	_, err = leaf(nil, []net.IP{net.ParseIP("10.0.0.1")}).Verify(x509.VerifyOptions{DNSName: "10.0.0.1", Roots: roots})
	assert.Error(t, err, "a non-loopback address")
	for _, host := range []string{"localhost", "contoso.crm.localhost", "127.0.0.1", "::1"} {
		_, err := leaf([]string{"localhost", "contoso.crm.localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}).
			Verify(x509.VerifyOptions{DNSName: host, Roots: roots})
		assert.NoError(t, err, host)
	}

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		for blk, rest := pem.Decode(b); blk != nil; blk, rest = pem.Decode(rest) {
			assert.False(t, strings.Contains(blk.Type, "PRIVATE KEY"), "%s holds a private key", e.Name())
		}
	}
	assert.NoFileExists(t, filepath.Join(dir, "ca-key.pem"))
}
