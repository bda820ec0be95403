package emulator

import (
	"sort"
	"strings"
	"time"
)

// State is a snapshot of every object the emulator holds, without secret values.
type State struct {
	Tenants []TenantState `json:"tenants"`
	Orgs    []OrgState    `json:"orgs"`
}

// TenantState is one tenant's directory.
type TenantState struct {
	ID                string            `json:"id"`
	DisplayName       string            `json:"displayName"`
	Applications      []AppState        `json:"applications"`
	ServicePrincipals []SPState         `json:"servicePrincipals"`
	PermissionGrants  []GrantState      `json:"permissionGrants"`
	HRDPolicies       []HRDPolicyState  `json:"hrdPolicies"`
	Domains           []SeedDomainState `json:"domains"`
	// PasswordEvents lists every client secret added or removed, oldest first.
	PasswordEvents []PasswordEvent `json:"passwordEvents"`
	// AuthCodes lists the authorization codes issued (authorize.go), never their values.
	AuthCodes []AuthCodeState `json:"authCodes"`
}

// SeedDomainState is a domain of the tenant.
type SeedDomainState struct {
	Name               string `json:"name"`
	AuthenticationType string `json:"authenticationType"`
	IsVerified         bool   `json:"isVerified"`
}

// AppState is an application registration.
type AppState struct {
	ID                  string          `json:"id"`
	AppID               string          `json:"appId"`
	DisplayName         string          `json:"displayName"`
	UniqueName          string          `json:"uniqueName,omitempty"`
	SignInAudience      string          `json:"signInAudience"`
	Owner               string          `json:"owner,omitempty"` // appId of the creating app; "" = seeded
	Seeded              bool            `json:"seeded"`
	RedirectURIs        []string        `json:"redirectUris"`
	RequiredAccess      []RequiredState `json:"requiredResourceAccess"`
	PasswordCredentials []PasswordState `json:"passwordCredentials"`
	Roles               []string        `json:"roles,omitempty"`
	Created             time.Time       `json:"created"`
}

// RequiredState is one requiredResourceAccess entry.
type RequiredState struct {
	ResourceAppID string   `json:"resourceAppId"`
	ScopeIDs      []string `json:"resourceAccessIds"`
}

// PasswordState describes a client secret without its value or hint.
type PasswordState struct {
	KeyID         string    `json:"keyId"`
	DisplayName   string    `json:"displayName"`
	StartDateTime time.Time `json:"startDateTime"`
	EndDateTime   time.Time `json:"endDateTime"`
}

// SPState is a service principal.
type SPState struct {
	ID          string   `json:"id"`
	AppID       string   `json:"appId"`
	DisplayName string   `json:"displayName"`
	Owner       string   `json:"owner,omitempty"`
	HRDPolicies []string `json:"hrdPolicyIds"`
}

// GrantState is an oauth2PermissionGrant.
type GrantState struct {
	ID          string `json:"id"`
	ClientID    string `json:"clientId"`
	ConsentType string `json:"consentType"`
	ResourceID  string `json:"resourceId"`
	Scope       string `json:"scope"`
}

// HRDPolicyState is a home realm discovery policy.
type HRDPolicyState struct {
	ID          string   `json:"id"`
	DisplayName string   `json:"displayName"`
	Definition  []string `json:"definition"`
}

// OrgState is one Dataverse environment.
type OrgState struct {
	Host           string              `json:"host"`
	TenantID       string              `json:"tenantId"`
	OrganizationID string              `json:"organizationId"`
	BusinessUnitID string              `json:"businessUnitId"`
	Roles          []RoleState         `json:"roles"`
	Users          []UserState         `json:"users"`
	MarketoConfigs []ConfigState       `json:"marketoConfigs"`
	Columns        map[string][]string `json:"columns"` // entity -> created column logical names
	// SolutionComponents lists, per unmanaged solution, the columns added to it ("entity.column").
	SolutionComponents map[string][]string  `json:"solutionComponents,omitempty"`
	PublishCount       int                  `json:"publishCount"`
	Solutions          []SeedSolutionState  `json:"solutions"`
	ConfigNames        SeedConfigNamesState `json:"marketoConfigNames"`
	EnvironmentID      string               `json:"environmentId"`   // Power Platform environment name
	PendingAppUsers    int                  `json:"pendingAppUsers"` // added with addAppUser, not replicated yet
}

// RoleState is a security role.
type RoleState struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// UserState is a system user with its role associations.
type UserState struct {
	ID            string   `json:"id"`
	ApplicationID string   `json:"applicationId"`
	FullName      string   `json:"fullName"`
	Email         string   `json:"internalEmailAddress"`
	Disabled      bool     `json:"isDisabled"`
	AccessMode    int      `json:"accessMode"`
	RoleIDs       []string `json:"roleIds"`
	RoleNames     []string `json:"roleNames"`
}

// ConfigState is a Marketo Config record.
type ConfigState struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	UserID string `json:"userId,omitempty"`
}

// SeedSolutionState is an installed solution.
type SeedSolutionState struct {
	UniqueName string `json:"uniqueName"`
	Version    string `json:"version"`
}

// SeedConfigNamesState are the Marketo Config entity names this org uses.
type SeedConfigNamesState struct {
	EntitySet  string `json:"entitySet"`
	IDColumn   string `json:"idColumn"`
	NameColumn string `json:"nameColumn"`
	UserLookup string `json:"userLookup"`
}

// State returns a deep copy of the world; secret values and hints are never included.
func (s *Server) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st State
	for _, t := range s.tenants {
		ts := TenantState{ID: t.id, DisplayName: t.displayName, Applications: []AppState{}, ServicePrincipals: []SPState{},
			PermissionGrants: []GrantState{}, HRDPolicies: []HRDPolicyState{}, PasswordEvents: append([]PasswordEvent{}, t.passwordLog...)}
		for _, d := range t.domains {
			ts.Domains = append(ts.Domains, SeedDomainState{Name: d.Name, AuthenticationType: d.AuthenticationType, IsVerified: d.IsVerified})
		}
		apps := make([]*application, 0, len(t.apps))
		for _, a := range t.apps {
			apps = append(apps, a)
		}
		sort.Slice(apps, func(i, j int) bool { return apps[i].seq < apps[j].seq })
		for _, a := range apps {
			as := AppState{ID: a.id, AppID: a.appID, DisplayName: a.displayName, UniqueName: a.uniqueName, SignInAudience: a.signInAudience,
				Owner: a.owner, Seeded: a.owner == "", RedirectURIs: append([]string{}, a.redirectURIs...), PasswordCredentials: []PasswordState{},
				RequiredAccess: []RequiredState{}, Roles: append([]string(nil), a.roles...), Created: a.created}
			for _, r := range a.rra {
				rs := RequiredState{ResourceAppID: r.ResourceAppID}
				for _, ra := range r.ResourceAccess {
					rs.ScopeIDs = append(rs.ScopeIDs, ra.ID)
				}
				as.RequiredAccess = append(as.RequiredAccess, rs)
			}
			for _, p := range a.passwords {
				as.PasswordCredentials = append(as.PasswordCredentials, PasswordState{KeyID: p.keyID, DisplayName: p.displayName, StartDateTime: p.start, EndDateTime: p.end})
			}
			ts.Applications = append(ts.Applications, as)
		}
		sps := make([]*servicePrincipal, 0, len(t.sps))
		for _, sp := range t.sps {
			sps = append(sps, sp)
		}
		sort.Slice(sps, func(i, j int) bool { return sps[i].seq < sps[j].seq })
		for _, sp := range sps {
			ts.ServicePrincipals = append(ts.ServicePrincipals, SPState{ID: sp.id, AppID: sp.appID, DisplayName: sp.displayName, Owner: sp.owner, HRDPolicies: append([]string{}, sp.policies...)})
		}
		for _, g := range t.grants {
			ts.PermissionGrants = append(ts.PermissionGrants, GrantState{ID: g.id, ClientID: g.clientID, ConsentType: g.consentType, ResourceID: g.resourceID, Scope: g.scope})
		}
		sort.Slice(ts.PermissionGrants, func(i, j int) bool { return ts.PermissionGrants[i].ID < ts.PermissionGrants[j].ID })
		for _, p := range t.policies {
			ts.HRDPolicies = append(ts.HRDPolicies, HRDPolicyState{ID: p.id, DisplayName: p.displayName, Definition: append([]string{}, p.definition...)})
		}
		sort.Slice(ts.HRDPolicies, func(i, j int) bool { return ts.HRDPolicies[i].ID < ts.HRDPolicies[j].ID })
		ts.AuthCodes = t.del.codeStates()
		st.Tenants = append(st.Tenants, ts)
	}
	sort.Slice(st.Tenants, func(i, j int) bool { return st.Tenants[i].ID < st.Tenants[j].ID })
	for _, o := range s.orgs {
		os := OrgState{Host: o.host, TenantID: o.tenantID, OrganizationID: o.organizationID, BusinessUnitID: strings.ToLower(o.rootBU.ID),
			Users: []UserState{}, MarketoConfigs: []ConfigState{}, Columns: map[string][]string{}, PublishCount: o.publishCount,
			ConfigNames: SeedConfigNamesState{EntitySet: o.cfgNames.EntitySet, IDColumn: o.cfgNames.IDColumn, NameColumn: o.cfgNames.NameColumn, UserLookup: o.cfgNames.UserLookup}}
		for _, r := range o.roles {
			os.Roles = append(os.Roles, RoleState{ID: strings.ToLower(r.ID), Name: r.Name})
		}
		for _, x := range o.solutions {
			os.Solutions = append(os.Solutions, SeedSolutionState{UniqueName: x.UniqueName, Version: x.Version})
		}
		for _, u := range o.users {
			us := UserState{ID: u.id, ApplicationID: u.applicationID, FullName: u.fullName, Email: u.email, Disabled: u.disabled, AccessMode: u.accessMode, RoleIDs: append([]string{}, u.roleIDs...)}
			for _, rid := range u.roleIDs {
				if r := o.roleByID(rid); r != nil {
					us.RoleNames = append(us.RoleNames, r.Name)
				}
			}
			os.Users = append(os.Users, us)
		}
		os.EnvironmentID, os.PendingAppUsers = o.environmentID, len(o.pendingAppUsers)
		for _, cfg := range o.configs {
			os.MarketoConfigs = append(os.MarketoConfigs, ConfigState{ID: cfg.id, Name: cfg.name, UserID: cfg.userID})
		}
		for e, cols := range o.entities {
			names := []string{}
			for ln, col := range cols {
				names = append(names, ln)
				if col.solution != "" {
					if os.SolutionComponents == nil {
						os.SolutionComponents = map[string][]string{}
					}
					os.SolutionComponents[col.solution] = append(os.SolutionComponents[col.solution], e+"."+ln)
				}
			}
			sort.Strings(names)
			os.Columns[e] = names
		}
		st.Orgs = append(st.Orgs, os)
	}
	sort.Slice(st.Orgs, func(i, j int) bool { return st.Orgs[i].Host < st.Orgs[j].Host })
	return st
}
