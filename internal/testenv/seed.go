package testenv

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mktos2s/mktos2s/internal/emulator"
)

// Tenant describes one more tenant, and its Dynamics org, derived from a
// tenant of the seed, so that tests sharing one emulator do not see each
// other's objects.
type Tenant struct {
	From        string // ID of the seeded tenant to copy (its domains, provisioner and org)
	ID          string // new tenant GUID
	DisplayName string // also the first label of the copied domain names
	OrgHost     string // e.g. "crash.crm.localhost"
	// WithoutPermissions removes these Graph application permissions from the
	// copied provisioner, to provoke permission errors.
	WithoutPermissions []string
	// Org, when set, changes the copied org (e.g. AddAppUserIgnored).
	Org func(*emulator.SeedOrg)
}

// AddTenant appends t to seed. IDs of the copied org's objects are cleared so
// that the emulator generates fresh ones.
func AddTenant(seed *emulator.Seed, t Tenant) error {
	i := slices.IndexFunc(seed.Tenants, func(x emulator.SeedTenant) bool { return strings.EqualFold(x.ID, t.From) })
	if i < 0 {
		return fmt.Errorf("testenv: seed has no tenant %s", t.From)
	}
	src := seed.Tenants[i]
	nt := emulator.SeedTenant{ID: t.ID, DisplayName: t.DisplayName, Provisioner: src.Provisioner, Admins: slices.Clone(src.Admins)}
	label := strings.ToLower(t.DisplayName)
	for k, a := range nt.Admins {
		user, domain, _ := strings.Cut(a.UPN, "@")
		_, rest, _ := strings.Cut(domain, ".")
		nt.Admins[k].UPN = user + "@" + label + "." + rest
	}
	for _, d := range src.Domains {
		_, rest, _ := strings.Cut(d.Name, ".")
		d.Name = label + "." + rest
		nt.Domains = append(nt.Domains, d)
	}
	nt.Provisioner.Roles = slices.DeleteFunc(slices.Clone(src.Provisioner.Roles), func(r string) bool {
		return slices.Contains(t.WithoutPermissions, r)
	})
	seed.Tenants = append(seed.Tenants, nt)

	j := slices.IndexFunc(seed.Orgs, func(o emulator.SeedOrg) bool { return strings.EqualFold(o.TenantID, t.From) })
	if j < 0 {
		return fmt.Errorf("testenv: seed has no org of tenant %s", t.From)
	}
	o := seed.Orgs[j]
	o.Host, o.TenantID, o.OrganizationID, o.EnvironmentID = t.OrgHost, t.ID, "", ""
	o.RootBusinessUnit = emulator.SeedBusinessUnit{Name: label}
	o.Solutions = slices.Clone(o.Solutions)
	for k := range o.Solutions {
		o.Solutions[k].ID = ""
	}
	o.Roles = slices.Clone(o.Roles)
	for k := range o.Roles {
		o.Roles[k].ID = ""
	}
	o.Entities = slices.Clone(o.Entities)
	o.MarketoConfig.Records = slices.Clone(o.MarketoConfig.Records)
	for k := range o.MarketoConfig.Records {
		o.MarketoConfig.Records[k].ID = ""
	}
	o.Users = slices.Clone(o.Users)
	for k := range o.Users {
		o.Users[k].Roles = slices.Clone(o.Users[k].Roles)
	}
	if t.Org != nil {
		t.Org(&o)
	}
	seed.Orgs = append(seed.Orgs, o)
	return nil
}

// TenantState returns the emulator's state of one tenant and its org.
func (e *Env) TenantState(tenantID string) (emulator.TenantState, emulator.OrgState, error) {
	st := e.Emu.State()
	var ts emulator.TenantState
	var org emulator.OrgState
	ti := slices.IndexFunc(st.Tenants, func(x emulator.TenantState) bool { return strings.EqualFold(x.ID, tenantID) })
	oi := slices.IndexFunc(st.Orgs, func(x emulator.OrgState) bool { return strings.EqualFold(x.TenantID, tenantID) })
	if ti < 0 || oi < 0 {
		return ts, org, fmt.Errorf("testenv: emulator has no tenant or org %s", tenantID)
	}
	return st.Tenants[ti], st.Orgs[oi], nil
}
