package orgurl

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var dynamics = []string{".crm.dynamics.com", ".crm4.dynamics.com", ".crm.localhost"}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		raw, host, problem string
	}{
		{"https://contoso.crm.dynamics.com", "contoso.crm.dynamics.com", ""},
		{"https://Contoso.CRM4.dynamics.com/", "contoso.crm4.dynamics.com", ""},
		{"  https://contoso.crm.localhost:8443  ", "contoso.crm.localhost", ""},
		{"", "", "is required"},
		{"contoso.crm.dynamics.com", "", "is not an absolute URL"},
		{"http://contoso.crm.dynamics.com", "", "must use https"},
		{"https://contoso.crm.dynamics.com/main.aspx", "", "bare org URL"},
		{"https://contoso.crm.dynamics.com?x=1", "", "bare org URL"},
		{"https://contoso.crm.dynamics.com#x", "", "bare org URL"},
		{"https://user:pw@contoso.crm.dynamics.com", "", "bare org URL"},
		{"https://evil.example@contoso.crm.dynamics.com", "", "bare org URL"},
		{"https://evil.example\\@contoso.crm.dynamics.com", "", "backslash"},
		{"https://contoso%2ecrm.dynamics.com", "", "%-encoding"},
		{"https://contoso.crm.dynamics.com.", "", "trailing dot"},
		{"https://contoso..crm.dynamics.com", "", "empty label"},
		{"https://contoso\uff0ecrm.dynamics.com", "", "ASCII letters"},
		{"https://contoso_x.crm.dynamics.com", "", "ASCII letters"},
		{"https://-contoso.crm.dynamics.com", "", "hyphen"},
		{"https://127.0.0.1", "", "IP address"},
		{"https://2130706433", "", "must name a host"},
		{"https://0x7f.0.0.1", "", "IP address"},
		{"https://[::1]:8443", "", "must name a host"},
		{"https://contoso.crm.dynamics.com:0", "", "invalid port"},
		{"https://contoso.crm.dynamics.com:", "", "invalid port"},
		{"https://" + strings.Repeat("a", 64) + ".crm.dynamics.com", "", "longer than 63"},
		{"https://evil.crm.dynamics.com.attacker.net", "", "not a Dynamics 365 org host"},
		{"https://crm.dynamics.com", "", "not a Dynamics 365 org host"},
		{"https://evilcrm.dynamics.com", "", "not a Dynamics 365 org host"},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			host, err := Check(tc.raw, dynamics)
			if tc.problem == "" {
				require.NoError(t, err)
				assert.Equal(t, tc.host, host)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.problem)
			assert.True(t, strings.HasPrefix(err.Error(), "orgUrl "), "the error names the field: %v", err)
			assert.Contains(t, err.Error(), "Power Platform admin center", "the error says where to find the right URL")
		})
	}
}

func TestProblemIgnoresTheAllowList(t *testing.T) {
	assert.Empty(t, Problem("https://contoso.crm.example.org"))
	assert.Contains(t, Problem("https://10.0.0.1"), "IP address")
}

// FuzzCheck: a URL that passes is one a browser and Go's HTTP client read
// as the same https host, which the allow-list matched.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"https://contoso.crm.dynamics.com", "https://a.crm.dynamics.com.evil.net", "https://a\\@b.crm.dynamics.com",
		"https://x%2e.crm.dynamics.com", "https://[::1]", "https://1.2.3.4", "https://a.crm.dynamics.com:443/", "https://ａ.crm.dynamics.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		host, err := Check(raw, dynamics)
		if err != nil {
			return
		}
		if !Allowed(host, dynamics) {
			t.Fatalf("%q passed with host %q outside the allow-list", raw, host)
		}
		for _, r := range host {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
				t.Fatalf("%q passed with host %q", raw, host)
			}
		}
		if strings.ContainsAny(raw, "@\\%") {
			t.Fatalf("%q passed", raw)
		}
	})
}
