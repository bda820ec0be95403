package activities

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/msauth"
)

// recorder is a transport that records every request and answers none.
type recorder struct {
	mu    sync.Mutex
	hosts []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hosts = append(r.hosts, req.URL.Host)
	return nil, errors.New("no network in this test")
}

// Undo, offboarding and validation take the org URL from their input, which
// any Temporal client can write: the Dataverse client factory refuses a host
// outside microsoft.allowedOrgSuffixes before a token is acquired for it or
// a request sent, and the refusal is final.
func TestDataverseFactoryRefusesForeignOrgHosts(t *testing.T) {
	for _, org := range []string{
		"https://evil.crm.dynamics.com.attacker.net",
		"https://10.0.0.7",
		"http://contoso.crm.dynamics.com",
	} {
		t.Run(org, func(t *testing.T) {
			rec := &recorder{}
			hc := &http.Client{Transport: rec}
			a := New(Deps{
				Auth: msauth.New(msauth.Options{AuthorityHost: "https://login.example", HTTPClient: hc}), HTTP: hc,
				GraphBaseURL: "https://graph.example/v1.0", Provisioner: msauth.Credential{ClientID: "prov", Secret: "prov-secret"},
				AllowedOrgSuffixes: []string{".crm.dynamics.com"},
			})
			_, err := a.RemoveApplicationUser(context.Background(), RemoveApplicationUserInput{TenantID: "tid", OrgURL: org, SystemUserID: "0b6a2b8e-4c1d-4e2f-9a3b-5c6d7e8f9a0b"})
			ae := asAppErr(t, err)
			assert.True(t, ae.NonRetryable(), "a retry cannot make the host allowed")
			assert.Equal(t, ErrInvalidRequest, ae.Type())
			assert.Contains(t, ae.Message(), "orgUrl")
			_, err = a.ValidateConnection(context.Background(), ValidateConnectionInput{TenantID: "tid", OrgURL: org, AppID: "app", SystemUserID: "0b6a2b8e-4c1d-4e2f-9a3b-5c6d7e8f9a0b"})
			require.Error(t, err)
			assert.Empty(t, rec.hosts, "no request may leave for the host, not even the token request")
		})
	}
}
