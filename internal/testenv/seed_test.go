package testenv

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/emulator"
)

const fabrikamID = "22222222-2222-2222-2222-222222222222"

func TestAddTenant(t *testing.T) {
	tests := []struct {
		name    string
		tenant  Tenant
		wantErr bool
	}{
		{name: "copy of a federated tenant", tenant: Tenant{From: fabrikamID, ID: "33333333-3333-3333-3333-333333333333", DisplayName: "Crashco", OrgHost: "crashco.crm.localhost"}},
		{name: "copy without a permission", tenant: Tenant{From: fabrikamID, ID: "44444444-4444-4444-4444-444444444444", DisplayName: "Nopolicy", OrgHost: "nopolicy.crm.localhost",
			WithoutPermissions: []string{"Policy.ReadWrite.ApplicationConfiguration"}}},
		{name: "unknown source tenant", tenant: Tenant{From: "99999999-9999-9999-9999-999999999999", ID: "33333333-3333-3333-3333-333333333333"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seed := emulator.DefaultSeed()
			pristine := emulator.DefaultSeed()
			err := AddTenant(seed, tt.tenant)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			// The source tenant and org are untouched (no shared slices).
			assert.Equal(t, pristine.Tenants, seed.Tenants[:len(pristine.Tenants)])
			assert.Equal(t, pristine.Orgs, seed.Orgs[:len(pristine.Orgs)])

			nt := seed.Tenants[len(seed.Tenants)-1]
			src := pristine.Tenants[slices.IndexFunc(pristine.Tenants, func(x emulator.SeedTenant) bool { return x.ID == tt.tenant.From })]
			assert.Equal(t, tt.tenant.ID, nt.ID)
			assert.Equal(t, src.Provisioner.ClientID, nt.Provisioner.ClientID)
			require.Len(t, nt.Domains, len(src.Domains))
			for i, d := range nt.Domains {
				assert.Equal(t, src.Domains[i].AuthenticationType, d.AuthenticationType, "federation is kept")
				assert.NotEqual(t, src.Domains[i].Name, d.Name, "domain names are the new tenant's")
			}
			for _, p := range src.Provisioner.Roles {
				assert.Equal(t, !slices.Contains(tt.tenant.WithoutPermissions, p), slices.Contains(nt.Provisioner.Roles, p), p)
			}

			org := seed.Orgs[len(seed.Orgs)-1]
			assert.Equal(t, tt.tenant.OrgHost, org.Host)
			assert.Equal(t, tt.tenant.ID, org.TenantID)
			assert.Empty(t, org.OrganizationID)
			assert.Empty(t, org.RootBusinessUnit.ID)
			for _, r := range org.Roles {
				assert.Empty(t, r.ID, "role %s gets a fresh ID", r.Name)
			}
			for _, r := range org.MarketoConfig.Records {
				assert.Empty(t, r.ID, "config record %s gets a fresh ID", r.Name)
			}

			// The emulator accepts the result.
			s, err := emulator.Start(t.Context(), emulator.Options{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Seed: seed})
			require.NoError(t, err)
			t.Cleanup(func() { _ = s.Close() })
			st := s.State()
			i := slices.IndexFunc(st.Orgs, func(o emulator.OrgState) bool { return o.Host == tt.tenant.OrgHost })
			require.GreaterOrEqual(t, i, 0)
			assert.NotEmpty(t, st.Orgs[i].BusinessUnitID)
			assert.Len(t, st.Orgs[i].MarketoConfigs, 1)
		})
	}
}
