package emulator

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed seed/default.yaml
var defaultSeedYAML []byte

// DefaultSeedYAML returns the embedded default seed file, byte for byte.
func DefaultSeedYAML() []byte { return append([]byte(nil), defaultSeedYAML...) }

// Seed is the emulator's initial world. Its YAML form is documented in seed/default.yaml.
type Seed struct {
	Tenants []SeedTenant `yaml:"tenants" json:"tenants"`
	Orgs    []SeedOrg    `yaml:"orgs" json:"orgs"`
	Faults  Faults       `yaml:"faults" json:"faults"`
}

// SeedTenant is one Entra tenant.
type SeedTenant struct {
	ID          string          `yaml:"id"`
	DisplayName string          `yaml:"displayName"`
	Domains     []SeedDomain    `yaml:"domains"`
	Provisioner SeedProvisioner `yaml:"provisioner"`
	Admins      []SeedAdmin     `yaml:"admins"`
	// AdminConsentBlocked plays a tenant whose consent policy refuses the
	// grant: the admin-consent page's Accept redirects with Entra's
	// consent_required error instead of granting.
	AdminConsentBlocked bool `yaml:"adminConsentBlocked"`
}

// SeedAdmin is a person who can sign in on the emulator's sign-in page.
type SeedAdmin struct {
	UPN         string   `yaml:"upn"`
	DisplayName string   `yaml:"displayName"`
	Roles       []string `yaml:"roles"` // Entra directory roles, e.g. Global Administrator, Power Platform Administrator
}

// SeedDomain is a domain of a tenant.
type SeedDomain struct {
	Name               string `yaml:"name"`
	AuthenticationType string `yaml:"authenticationType"`
	IsVerified         bool   `yaml:"isVerified"`
	IsDefault          bool   `yaml:"isDefault"`
}

// SeedProvisioner is the application mktos2s signs in as.
type SeedProvisioner struct {
	ClientID        string   `yaml:"clientId"`
	DisplayName     string   `yaml:"displayName"`
	Secret          string   `yaml:"secret"`
	CertificateFile string   `yaml:"certificateFile"`
	CertificatePEM  string   `yaml:"certificatePem"`
	Roles           []string `yaml:"roles"`
	// Unconsented: the provisioner is registered (multitenant, in the
	// operator's tenant) but nobody consented to it in this tenant yet: no
	// service principal, no roles until an admin consents.
	Unconsented bool `yaml:"unconsented"`
	// RedirectURIs of the provisioner's registration (customer-admin session
	// mode sends the admin back to the consent callback). For loopback hosts
	// the port is ignored, as Entra does for http://127.0.0.1 and localhost.
	RedirectURIs []string `yaml:"redirectUris"`
}

// SeedOrg is one Dataverse environment.
type SeedOrg struct {
	Host           string `yaml:"host"`
	TenantID       string `yaml:"tenantId"`
	OrganizationID string `yaml:"organizationId"`
	EnvironmentID  string `yaml:"environmentId"` // Power Platform environment (name); default: generated
	// AddAppUserDelayMs: an application user added with the Power Platform
	// admin API's addAppUser shows in Dataverse only this long after the call.
	AddAppUserDelayMs int `yaml:"addAppUserDelayMs"`
	// AddAppUserIgnored: addAppUser answers 200 and nothing happens (the API
	// answers 200 "unless you aren't correctly authenticated").
	AddAppUserIgnored bool              `yaml:"addAppUserIgnored"`
	RootBusinessUnit  SeedBusinessUnit  `yaml:"rootBusinessUnit"`
	Solutions         []SeedSolution    `yaml:"solutions"`
	Roles             []SeedRole        `yaml:"roles"`
	Entities          []string          `yaml:"entities"`
	MarketoConfig     SeedMarketoConfig `yaml:"marketoConfig"`
	Users             []SeedUser        `yaml:"users"`
	// RefuseAppUserDelete makes the org refuse to delete an application
	// user whose Entra app still exists (400 0x80048359), as orgs are
	// reported to do; the user can only be disabled.
	RefuseAppUserDelete bool `yaml:"refuseAppUserDelete"`
}

// SeedBusinessUnit is the org's root business unit.
type SeedBusinessUnit struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
}

// SeedSolution is an installed solution.
type SeedSolution struct {
	ID           string `yaml:"id"`
	UniqueName   string `yaml:"uniqueName"`
	FriendlyName string `yaml:"friendlyName"`
	Version      string `yaml:"version"`
	// Unmanaged marks a solution an org's customizer owns; only those take
	// new components (the Marketo solution is managed).
	Unmanaged bool `yaml:"unmanaged"`
}

// SeedRole is a security role of the root business unit.
type SeedRole struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
}

// SeedMarketoConfig names the Marketo Config entity and lists its records.
type SeedMarketoConfig struct {
	Entity     string `yaml:"entity"` // logical name, default mkto_marketoconfig
	EntitySet  string `yaml:"entitySet"`
	IDColumn   string `yaml:"idColumn"`
	NameColumn string `yaml:"nameColumn"`
	UserLookup string `yaml:"userLookup"`
	// UserLookupNavigation is the lookup's navigation property, in its
	// SchemaName's casing (default mkto_MarketoUserId): binds must use it.
	UserLookupNavigation string             `yaml:"userLookupNavigation"`
	Records              []SeedConfigRecord `yaml:"records"`
}

// SeedConfigRecord is one Marketo Config record.
type SeedConfigRecord struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
}

// SeedUser is an application user present at start.
type SeedUser struct {
	ApplicationID string   `yaml:"applicationId"`
	FullName      string   `yaml:"fullName"`
	Roles         []string `yaml:"roles"`
}

// DefaultSeed returns the parsed embedded default seed.
func DefaultSeed() *Seed {
	s, err := parseSeed(defaultSeedYAML, "")
	if err != nil {
		// The embedded file is tested; failing here is a build defect, not a runtime condition.
		panic(fmt.Sprintf("emulator: embedded default seed: %v", err))
	}
	return s
}

// LoadSeed reads a seed YAML file; certificateFile paths are relative to its directory.
func LoadSeed(path string) (*Seed, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read seed: %w", err)
	}
	s, err := parseSeed(b, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("seed %s: %w", path, err)
	}
	return s, nil
}

func parseSeed(b []byte, dir string) (*Seed, error) {
	var s Seed
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	for i := range s.Tenants {
		p := &s.Tenants[i].Provisioner
		if p.CertificateFile != "" && p.CertificatePEM == "" {
			f := p.CertificateFile
			if !filepath.IsAbs(f) && dir != "" {
				f = filepath.Join(dir, f)
			}
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("tenant %s: certificate: %w", s.Tenants[i].ID, err)
			}
			p.CertificatePEM = string(pem)
		}
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *Seed) validate() error {
	var errs []error
	tenants := map[string]bool{}
	for _, t := range s.Tenants {
		if !isGUID(t.ID) {
			errs = append(errs, fmt.Errorf("tenant id %q is not a GUID", t.ID))
		}
		tenants[strings.ToLower(t.ID)] = true
		if t.Provisioner.ClientID != "" && !isGUID(t.Provisioner.ClientID) {
			errs = append(errs, fmt.Errorf("tenant %s: provisioner clientId is not a GUID", t.ID))
		}
		for _, a := range t.Admins {
			if !strings.Contains(a.UPN, "@") {
				errs = append(errs, fmt.Errorf("tenant %s: admin upn %q is not user@domain", t.ID, a.UPN))
			}
		}
		for _, d := range t.Domains {
			if d.AuthenticationType != "Managed" && d.AuthenticationType != "Federated" {
				errs = append(errs, fmt.Errorf("tenant %s: domain %s: authenticationType must be Managed or Federated", t.ID, d.Name))
			}
		}
	}
	for _, o := range s.Orgs {
		if o.Host == "" {
			errs = append(errs, errors.New("org without host"))
		}
		if !tenants[strings.ToLower(o.TenantID)] {
			errs = append(errs, fmt.Errorf("org %s: unknown tenantId %q", o.Host, o.TenantID))
		}
		for _, id := range []string{o.OrganizationID, o.RootBusinessUnit.ID, o.EnvironmentID} {
			if id != "" && !isGUID(id) {
				errs = append(errs, fmt.Errorf("org %s: %q is not a GUID", o.Host, id))
			}
		}
	}
	if err := s.Faults.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
