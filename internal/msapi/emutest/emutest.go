// Package emutest starts the local emulator for the client tests and builds the client side
// (HTTP client, MSAL provider) exactly as the product configures it in emulator mode.
package emutest

import (
	"context"
	"net/http"
	"testing"

	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/msapi"
	"github.com/mktos2s/mktos2s/internal/msauth"
)

// Seeded names of the emulator's default seed (CONTRACT.md, "internal/emulator").
const (
	ContosoTenant       = "11111111-1111-1111-1111-111111111111"
	FabrikamTenant      = "22222222-2222-2222-2222-222222222222"
	ContosoOrgHost      = "contoso.crm.localhost"
	FabrikamOrgHost     = "fabrikam.crm.localhost"
	ProvisionerClientID = "aaaaaaaa-0000-0000-0000-000000000001"
	// ProvisionerSecret is the default seed's demo secret; it exists only in the emulator.
	ProvisionerSecret = "provisioner-demo-secret"
)

// Emulated is a running emulator and the client side the product would use against it:
// an HTTP client that trusts the emulator's CA and dials *.localhost at 127.0.0.1, and an
// MSAL token provider whose authority host is the emulator.
type Emulated struct {
	Server *emulator.Server
	HTTP   *http.Client
	Auth   *msauth.Provider
}

// StartEmulator starts the emulator with its default seed on a free loopback port.
func StartEmulator(t *testing.T) *Emulated {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := emulator.Start(ctx, emulator.Options{Addr: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		cancel()
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() {
		_ = srv.Close()
		cancel()
	})
	hc, err := msapi.NewHTTPClient(msapi.HTTPOptions{CAFile: srv.CAFile(), DialOverrides: map[string]string{"*.localhost": "127.0.0.1"}})
	if err != nil {
		t.Fatalf("http client: %v", err)
	}
	return &Emulated{Server: srv, HTTP: hc, Auth: msauth.New(msauth.Options{AuthorityHost: srv.URL(), HTTPClient: hc})}
}

// GraphURL is the emulated Graph v1.0 base URL.
func (e *Emulated) GraphURL() string { return e.Server.URL() + "/v1.0" }

// Provisioner is the seeded provisioner app's credential (the same client ID in every tenant).
func (e *Emulated) Provisioner() msauth.Credential {
	return msauth.Credential{ClientID: ProvisionerClientID, Secret: ProvisionerSecret}
}

// GraphTokens are Graph tokens for cred in tenant.
func (e *Emulated) GraphTokens(tenant string, cred msauth.Credential) msapi.TokenSource {
	return e.Auth.Source(tenant, cred, msauth.ScopeFor(e.GraphURL()))
}

// OrgTokens are Dataverse tokens for cred in tenant, for the org at host.
func (e *Emulated) OrgTokens(tenant, host string, cred msauth.Credential) msapi.TokenSource {
	return e.Auth.Source(tenant, cred, msauth.ScopeFor(e.Server.OrgURL(host)))
}

// RequireKind asserts that err is an *msapi.Error of service, kind and code, and returns it.
func RequireKind(t *testing.T, err error, service string, kind msapi.Kind, code string) *msapi.Error {
	t.Helper()
	me, ok := msapi.AsError(err)
	if !ok {
		t.Fatalf("want *msapi.Error (%s %s), got %T: %v", service, kind, err, err)
	}
	if me.Service != service || me.Kind != kind || (code != "" && me.Code != code) {
		t.Fatalf("want %s %s %s, got %s", service, kind, code, me.Error())
	}
	if kind == msapi.Throttled && me.RetryAfter <= 0 {
		t.Fatalf("throttled without Retry-After: %s", me.Error())
	}
	return me
}

// Injected is an error the emulator is told to answer once, and the Kind it must map to.
type Injected struct {
	Status int
	Code   string
	Kind   msapi.Kind
}

// CheckInjected makes the emulator fail op once per case and checks that call returns the
// matching *msapi.Error of service.
func (e *Emulated) CheckInjected(t *testing.T, service, op string, cases []Injected, call func() error) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Code, func(t *testing.T) {
			e.Server.FailNext(op, 1, tc.Status, tc.Code)
			me := RequireKind(t, call(), service, tc.Kind, tc.Code)
			if me.RequestID == "" {
				t.Errorf("no request-id in %s", me.Error())
			}
		})
	}
}
