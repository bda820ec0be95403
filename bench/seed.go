package main

import (
	"fmt"
	"slices"

	"github.com/mktos2s/mktos2s/internal/emulator"
)

// benchTenant is the i-th customer the benchmark onboards. Every onboarding
// needs its own tenant and org: the workflow ID is one per tenant and org.
func benchTenant(i int) (tenantID, orgHost string) {
	// Hosts under *.crm.localhost: the emulator's certificate covers them with
	// its wildcard, however many are seeded.
	return fmt.Sprintf("b0000000-0000-4000-8000-%012d", i), fmt.Sprintf("b%d.crm.localhost", i)
}

// benchSeed is the emulator's default seed plus n tenants from the from-th, each a copy of the
// default seed's first (managed, not federated) tenant and its org, so that
// every onboarding takes the same happy path.
func benchSeed(from, n int) (*emulator.Seed, error) {
	seed := emulator.DefaultSeed()
	if len(seed.Tenants) == 0 || len(seed.Orgs) == 0 {
		return nil, fmt.Errorf("bench: the default emulator seed has no tenant or org")
	}
	tmpl := seed.Tenants[0]
	oi := slices.IndexFunc(seed.Orgs, func(o emulator.SeedOrg) bool { return o.TenantID == tmpl.ID })
	if oi < 0 {
		return nil, fmt.Errorf("bench: the default seed has no org of tenant %s", tmpl.ID)
	}
	orgTmpl := seed.Orgs[oi]
	for i := from; i < from+n; i++ {
		id, host := benchTenant(i)
		label := fmt.Sprintf("bench%d", i)
		seed.Tenants = append(seed.Tenants, emulator.SeedTenant{
			ID:          id,
			DisplayName: label,
			Domains: []emulator.SeedDomain{{
				Name: label + ".onmicrosoft.com", AuthenticationType: "Managed", IsVerified: true, IsDefault: true,
			}},
			Provisioner: tmpl.Provisioner,
		})
		o := orgTmpl
		// Empty IDs make the emulator generate fresh ones per org.
		o.Host, o.TenantID, o.OrganizationID = host, id, ""
		o.RootBusinessUnit = emulator.SeedBusinessUnit{Name: label}
		o.Solutions = clearIDs(o.Solutions, func(s *emulator.SeedSolution) { s.ID = "" })
		o.Roles = clearIDs(o.Roles, func(r *emulator.SeedRole) { r.ID = "" })
		o.MarketoConfig.Records = clearIDs(o.MarketoConfig.Records, func(r *emulator.SeedConfigRecord) { r.ID = "" })
		seed.Orgs = append(seed.Orgs, o)
	}
	return seed, nil
}

func clearIDs[T any](in []T, clear func(*T)) []T {
	out := slices.Clone(in)
	for i := range out {
		clear(&out[i])
	}
	return out
}
