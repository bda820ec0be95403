package emulator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1" // #nosec G505 -- x5t is defined as a SHA-1 thumbprint (RFC 7515 4.1.7)
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// pki is the emulator's CA and the server certificate it signed.
type pki struct {
	caPEM  []byte
	caKey  *ecdsa.PrivateKey // in memory only: nothing can sign with this CA once the emulator stops
	server tls.Certificate
}

// newPKI generates a fresh CA and server certificate and writes the CA
// certificate (never its key) to dir. The CA is name-constrained to loopback
// names and addresses, so even a client that trusts it (microsoft.caFile left
// set in production adds it to the system roots) accepts no certificate of it
// for login.microsoftonline.com, graph.microsoft.com or an org's host.
func newPKI(dir string, hosts []string) (*pki, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "mktos2s emulator CA", Organization: []string{"mktos2s"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(1, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		// "localhost" permits localhost and every name under it (RFC 5280 4.2.1.10).
		PermittedDNSDomainsCritical: true,
		PermittedDNSDomains:         []string{"localhost"},
		PermittedIPRanges: []*net.IPNet{
			{IP: net.IPv4(127, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)},
			{IP: net.IPv6loopback, Mask: net.CIDRMask(128, 128)},
		},
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "mktos2s emulator"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     certNames(hosts),
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create server certificate: %w", err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), caPEM, 0o644); err != nil {
		return nil, fmt.Errorf("write CA: %w", err)
	}
	// A key left by an emulator that wrote it: nothing reads it, and it could sign for any host.
	_ = os.Remove(filepath.Join(dir, "ca-key.pem"))
	return &pki{
		caPEM:  caPEM,
		caKey:  caKey,
		server: tls.Certificate{Certificate: [][]byte{srvDER, caDER}, PrivateKey: srvKey},
	}, nil
}

// wildcardNames are always in the server certificate; they cover every org host of the
// usual form (contoso.crm.localhost) and the emulator's own names.
var wildcardNames = []string{"localhost", "*.localhost", "*.crm.localhost", "*.vault.localhost"}

// certNames lists the certificate's DNS names: the wildcards, plus only those seeded hosts
// they do not cover. Listing every host made a 10,000-org seed's certificate (and every TLS
// handshake) larger than 256 KiB.
func certNames(hosts []string) []string {
	names := slices.Clone(wildcardNames)
	seen := map[string]bool{}
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		// The CA may sign only names under localhost; one other name would
		// make the whole certificate fail its name constraints.
		if h == "" || seen[h] || coveredByWildcard(h) || !strings.HasSuffix(h, ".localhost") {
			continue
		}
		seen[h] = true
		names = append(names, h)
	}
	return names
}

// coveredByWildcard reports whether a TLS client accepts host under one of wildcardNames: a
// wildcard stands for exactly one whole left-most label (RFC 6125 6.4.3, as crypto/x509 checks).
func coveredByWildcard(host string) bool {
	for _, n := range wildcardNames {
		if host == n {
			return true
		}
		suffix, ok := strings.CutPrefix(n, "*")
		if !ok {
			continue
		}
		label, ok := strings.CutSuffix(host, suffix)
		if ok && label != "" && !strings.Contains(label, ".") {
			return true
		}
	}
	return false
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// addCertificatePEM registers every CERTIFICATE in b as a credential of the application, keyed by
// both thumbprint forms a client assertion may carry.
func (a *application) addCertificatePEM(b []byte) error {
	found := false
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return err
		}
		s1 := sha1.Sum(blk.Bytes) // #nosec G401 -- thumbprint, not a security hash here
		s256 := sha256.Sum256(blk.Bytes)
		a.certThumbs["x5t:"+string(s1[:])] = blk.Bytes
		a.certThumbs["x5t#S256:"+string(s256[:])] = blk.Bytes
		found = true
	}
	if !found {
		return errors.New("no CERTIFICATE block")
	}
	return nil
}
