package emulator

import (
	"crypto/x509"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A seed of 10,000 orgs once put every org host in the server certificate, and the TLS
// handshake outgrew its 256 KiB limit. Hosts the wildcards cover stay out of it; the rest are
// listed, and every host still verifies.
func TestServerCertificateListsOnlyHostsTheWildcardsMiss(t *testing.T) {
	var hosts []string
	for i := range 10000 {
		hosts = append(hosts, fmt.Sprintf("b%d.crm.localhost", i))
	}
	// org.example.test is not a loopback name: the name-constrained CA does not sign it.
	uncovered := []string{"deep.org.crm.localhost"}
	hosts = append(hosts, "Contoso.CRM.localhost", "fabrikam.localhost", "deep.org.crm.localhost", "org.example.test.", "org.example.test")

	p, err := newPKI(t.TempDir(), hosts)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(p.server.Certificate[0])
	require.NoError(t, err)
	assert.ElementsMatch(t, append([]string{"localhost", "*.localhost", "*.crm.localhost", "*.vault.localhost"}, uncovered...), leaf.DNSNames)
	assert.Less(t, len(p.server.Certificate[0]), 4<<10, "certificate bytes")

	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(p.caPEM))
	for _, h := range []string{"b0.crm.localhost", "b9999.crm.localhost", "contoso.crm.localhost", "fabrikam.localhost", "localhost",
		"deep.org.crm.localhost"} {
		_, err := leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: roots})
		assert.NoError(t, err, h)
	}
	for _, h := range []string{"other.localhost.example", "org.example.test"} {
		_, err = leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: roots})
		assert.Error(t, err, "%s: neither under localhost nor under a wildcard", h)
	}
}

func TestCoveredByWildcard(t *testing.T) {
	tests := []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"contoso.localhost", true},
		{"contoso.crm.localhost", true},
		{"a.b.crm.localhost", false}, // a wildcard is one label
		{".crm.localhost", false},
		{"crm.localhost", true}, // under *.localhost
		{"contoso.crm4.dynamics.com", false},
		{"localhost.example", false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, coveredByWildcard(tt.host), tt.host)
	}
}
