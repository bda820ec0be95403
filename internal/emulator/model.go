package emulator

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Well-known first-party application IDs seeded as service principals in every tenant.
const (
	dynamicsCRMAppID      = "00000007-0000-0000-c000-000000000000"
	msGraphAppID          = "00000003-0000-0000-c000-000000000000"
	dynamicsImpersonation = "78ce3f0f-a1ce-49c2-8cde-64b5c0896db4"
)

// delegatedScopes maps (resource appId, scope id) to the scope value that a consent grants.
var delegatedScopes = map[string]map[string]string{
	dynamicsCRMAppID: {dynamicsImpersonation: "user_impersonation"},
	msGraphAppID:     {"e1fe6dd8-ba31-4d61-89e7-88639da4683d": "User.Read"},
	powerAppsAppID:   {powerAppsImpersonation: "user_impersonation"},
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func isGUID(s string) bool { return guidRE.MatchString(s) }

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// newSecret makes a client secret in Entra's style (40 characters, with a "~" at position 4).
func newSecret() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
	var b [40]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	b[3] = '~'
	return string(b[:])
}

func hashSecret(s string) [32]byte { return sha256.Sum256([]byte(s)) }

type tenant struct {
	id, displayName string
	domains         []SeedDomain
	apps            map[string]*application // by object id
	sps             map[string]*servicePrincipal
	grants          map[string]*permissionGrant
	policies        map[string]*hrdPolicy
	order           int // creation counter, keeps listings stable
	passwordLog     []PasswordEvent
	del             delegated // admins who can sign in, their sessions, codes and refresh tokens
	consentBlocked  bool      // SeedTenant.AdminConsentBlocked
}

type application struct {
	id, appID, displayName, uniqueName, signInAudience string
	redirectURIs                                       []string
	rra                                                []wireRRA
	passwords                                          []*password
	certThumbs                                         map[string][]byte // "x5t"/"x5t#S256" thumbprint -> DER
	roles                                              []string          // admin-consented application permissions
	requestedRoles                                     []string          // granted by the next admin consent (seed: unconsented)
	owner                                              string            // appId of the creator ("" = seeded)
	created                                            time.Time
	lagUntil                                           time.Time // Faults.AppLagMs: not replicated within Graph before
	seq                                                int
}

type password struct {
	keyID, displayName, hint string
	hash                     [32]byte
	start, end, created      time.Time
}

type servicePrincipal struct {
	id, appID, displayName string
	owner                  string
	created                time.Time
	policies               []string
	seq                    int
}

type permissionGrant struct {
	id, clientID, consentType, resourceID, scope string
	seq                                          int
}

type hrdPolicy struct {
	id, displayName, description string
	definition                   []string
	isOrganizationDefault        bool
	seq                          int
}

type org struct {
	host, tenantID, organizationID string
	rootBU                         SeedBusinessUnit
	solutions                      []SeedSolution
	roles                          []SeedRole
	entities                       map[string]map[string]column // entity -> logical name -> column
	cfgNames                       SeedMarketoConfig
	configs                        []*marketoConfig
	users                          []*systemUser
	publishCount                   int
	refuseAppUserDelete            bool
	environmentID                  string          // Power Platform environment name (powerplatform.go)
	appUsers                       appUserSettings // how addAppUser behaves for this environment
	pendingAppUsers                []pendingAppUser
}

type column struct {
	logicalName, schemaName, displayName, metadataID string
	solution                                         string // unique name of the unmanaged solution it was added to; "" = Default only
}

type marketoConfig struct {
	id, name, userID string
}

type systemUser struct {
	id, applicationID, fullName, email, businessUnitID string
	disabled                                           bool
	accessMode                                         int
	roleIDs                                            []string
	created                                            time.Time
}

func (t *tenant) next() int { t.order++; return t.order }

func (t *tenant) initialDomain() string {
	for _, d := range t.domains {
		if strings.HasSuffix(strings.ToLower(d.Name), ".onmicrosoft.com") {
			return d.Name
		}
	}
	if len(t.domains) > 0 {
		return t.domains[0].Name
	}
	return "tenant.onmicrosoft.com"
}

func (t *tenant) appByAppID(appID string) *application {
	for _, a := range t.apps {
		if strings.EqualFold(a.appID, appID) {
			return a
		}
	}
	return nil
}

func (t *tenant) appByUniqueName(n string) *application {
	for _, a := range t.apps {
		if a.uniqueName != "" && strings.EqualFold(a.uniqueName, n) {
			return a
		}
	}
	return nil
}

func (t *tenant) spByAppID(appID string) *servicePrincipal {
	for _, sp := range t.sps {
		if strings.EqualFold(sp.appID, appID) {
			return sp
		}
	}
	return nil
}

func (o *org) userByID(id string) *systemUser {
	for _, u := range o.users {
		if strings.EqualFold(u.id, id) {
			return u
		}
	}
	return nil
}

func (o *org) userByAppID(appID string) *systemUser {
	for _, u := range o.users {
		if strings.EqualFold(u.applicationID, appID) {
			return u
		}
	}
	return nil
}

func (o *org) roleByID(id string) *SeedRole {
	for i := range o.roles {
		if strings.EqualFold(o.roles[i].ID, id) {
			return &o.roles[i]
		}
	}
	return nil
}

func (o *org) roleByName(name string) *SeedRole {
	for i := range o.roles {
		if o.roles[i].Name == name {
			return &o.roles[i]
		}
	}
	return nil
}

func (o *org) configByID(id string) *marketoConfig {
	for _, c := range o.configs {
		if strings.EqualFold(c.id, id) {
			return c
		}
	}
	return nil
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// buildWorld turns a seed into live state.
func buildWorld(seed *Seed, now time.Time) (map[string]*tenant, map[string]*org, error) {
	tenants := map[string]*tenant{}
	for _, st := range seed.Tenants {
		t := &tenant{
			id: strings.ToLower(st.ID), displayName: st.DisplayName, domains: st.Domains,
			apps: map[string]*application{}, sps: map[string]*servicePrincipal{},
			grants: map[string]*permissionGrant{}, policies: map[string]*hrdPolicy{}, del: newDelegated(st.Admins),
			consentBlocked: st.AdminConsentBlocked,
		}
		for _, fp := range []struct{ appID, name string }{{dynamicsCRMAppID, "Dynamics CRM"}, {msGraphAppID, "Microsoft Graph"}, {powerAppsAppID, "PowerApps Service"}} {
			sp := &servicePrincipal{id: newGUID(), appID: fp.appID, displayName: fp.name, seq: t.next()}
			t.sps[sp.id] = sp
		}
		if p := st.Provisioner; p.ClientID != "" {
			a := &application{
				id: newGUID(), appID: strings.ToLower(p.ClientID), displayName: orDefault(p.DisplayName, "provisioner"),
				signInAudience: "AzureADMultipleOrgs", roles: append([]string(nil), p.Roles...),
				certThumbs: map[string][]byte{}, seq: t.next(), redirectURIs: slices.Clone(p.RedirectURIs),
			}
			if p.Secret != "" {
				a.passwords = append(a.passwords, &password{
					keyID: newGUID(), displayName: "seeded", hint: hintOf(p.Secret), hash: hashSecret(p.Secret),
					start: now.Add(-time.Hour), end: now.AddDate(10, 0, 0),
				})
			}
			if p.CertificatePEM != "" {
				if err := a.addCertificatePEM([]byte(p.CertificatePEM)); err != nil {
					return nil, nil, fmt.Errorf("tenant %s: provisioner certificate: %w", st.ID, err)
				}
			}
			t.apps[a.id] = a
			if p.Unconsented {
				unconsent(a)
			} else {
				sp := &servicePrincipal{id: newGUID(), appID: a.appID, displayName: a.displayName, seq: t.next()}
				t.sps[sp.id] = sp
			}
		}
		tenants[t.id] = t
	}
	orgs := map[string]*org{}
	for _, so := range seed.Orgs {
		mc := so.MarketoConfig
		mc.EntitySet = orDefault(mc.EntitySet, "mkto_marketoconfigs")
		mc.IDColumn = orDefault(mc.IDColumn, "mkto_marketoconfigid")
		mc.NameColumn = orDefault(mc.NameColumn, "mkto_name")
		mc.UserLookup = orDefault(mc.UserLookup, "mkto_marketouserid")
		mc.Entity = strings.ToLower(orDefault(mc.Entity, "mkto_marketoconfig"))
		mc.UserLookupNavigation = orDefault(mc.UserLookupNavigation, "mkto_MarketoUserId")
		o := &org{
			host: strings.ToLower(so.Host), tenantID: strings.ToLower(so.TenantID),
			organizationID:      strings.ToLower(orDefault(so.OrganizationID, newGUID())),
			rootBU:              SeedBusinessUnit{ID: strings.ToLower(orDefault(so.RootBusinessUnit.ID, newGUID())), Name: orDefault(so.RootBusinessUnit.Name, so.Host)},
			solutions:           append([]SeedSolution(nil), so.Solutions...),
			entities:            map[string]map[string]column{},
			cfgNames:            mc,
			refuseAppUserDelete: so.RefuseAppUserDelete,
			environmentID:       strings.ToLower(orDefault(so.EnvironmentID, newGUID())),
			appUsers:            appUserSettings{delay: time.Duration(so.AddAppUserDelayMs) * time.Millisecond, ignored: so.AddAppUserIgnored},
		}
		for i := range o.solutions {
			o.solutions[i].ID = orDefault(o.solutions[i].ID, newGUID())
		}
		for _, r := range so.Roles {
			o.roles = append(o.roles, SeedRole{ID: strings.ToLower(orDefault(r.ID, newGUID())), Name: r.Name})
		}
		for _, e := range so.Entities {
			o.entities[strings.ToLower(e)] = map[string]column{}
		}
		for _, r := range mc.Records {
			o.configs = append(o.configs, &marketoConfig{id: strings.ToLower(orDefault(r.ID, newGUID())), name: r.Name})
		}
		t := tenants[o.tenantID]
		for _, su := range so.Users {
			u := &systemUser{
				id: newGUID(), applicationID: strings.ToLower(su.ApplicationID), fullName: su.FullName,
				email: strings.ToLower(su.ApplicationID) + "@" + t.initialDomain(), businessUnitID: o.rootBU.ID,
				accessMode: 4, created: now.Add(-time.Hour),
			}
			for _, rn := range su.Roles {
				r := o.roleByName(rn)
				if r == nil {
					return nil, nil, fmt.Errorf("org %s: user %s: unknown role %q", so.Host, su.ApplicationID, rn)
				}
				u.roleIDs = append(u.roleIDs, r.ID)
			}
			o.users = append(o.users, u)
		}
		orgs[o.host] = o
	}
	return tenants, orgs, nil
}

func hintOf(secret string) string {
	if len(secret) < 3 {
		return secret
	}
	return secret[:3]
}
