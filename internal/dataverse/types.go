// Package dataverse calls the Dataverse Web API v9.2 of one Dynamics 365 org. See README.md for
// every call, its request shape and the Microsoft documentation page it follows.
package dataverse

import (
	"net/http"
	"strings"

	"github.com/mktos2s/mktos2s/internal/msapi"
)

// MarketoConfigNames are the Marketo solution's (undocumented) table and column names.
type MarketoConfigNames struct {
	Entity      string // table logical name, default "mkto_marketoconfig"
	EntitySet   string // default "mkto_marketoconfigs"
	IDColumn    string // default "mkto_marketoconfigid"
	NameColumn  string // default "mkto_name"
	DefaultName string // default "Default"
	// UserLookup is the lookup column's logical name (lower case), default
	// "mkto_marketouserid", read as "_<UserLookup>_value". Binding it takes
	// the navigation property, which keeps the lookup's SchemaName casing
	// (mkto_MarketoUserId) and is case-sensitive: MarketoUserNavigation
	// reads it from the table's metadata.
	UserLookup string
}

// DefaultMarketoConfigNames returns the names the emulator serves and the README documents.
func DefaultMarketoConfigNames() MarketoConfigNames {
	return MarketoConfigNames{
		Entity:      "mkto_marketoconfig",
		EntitySet:   "mkto_marketoconfigs",
		IDColumn:    "mkto_marketoconfigid",
		NameColumn:  "mkto_name",
		DefaultName: "Default",
		UserLookup:  "mkto_marketouserid",
	}
}

// Client calls one org's Dataverse Web API.
type Client struct {
	api   *msapi.Client
	names MarketoConfigNames
}

// New returns a client for orgURL (e.g. https://contoso.crm.dynamics.com); the API base is
// orgURL + "/api/data/v9.2". Empty fields of names take their defaults.
func New(orgURL string, hc *http.Client, tokens msapi.TokenSource, names MarketoConfigNames) *Client {
	d := DefaultMarketoConfigNames()
	if names.Entity == "" {
		names.Entity = d.Entity
	}
	if names.EntitySet == "" {
		names.EntitySet = d.EntitySet
	}
	if names.IDColumn == "" {
		names.IDColumn = d.IDColumn
	}
	if names.NameColumn == "" {
		names.NameColumn = d.NameColumn
	}
	if names.DefaultName == "" {
		names.DefaultName = d.DefaultName
	}
	if names.UserLookup == "" {
		names.UserLookup = d.UserLookup
	}
	return &Client{
		api:   &msapi.Client{Service: "dataverse", BaseURL: strings.TrimRight(orgURL, "/") + "/api/data/v9.2", HTTP: hc, Tokens: tokens},
		names: names,
	}
}

// WhoAmI is the caller as Dataverse sees it.
type WhoAmI struct{ UserID, BusinessUnitID, OrganizationID string }

// Solution is an installed solution.
type Solution struct{ ID, UniqueName, FriendlyName, Version string }

// BusinessUnit is a business unit.
type BusinessUnit struct{ ID, Name string }

// Role is a security role in a business unit.
type Role struct{ ID, Name, BusinessUnitID string }

// SystemUser is a Dataverse user; application users have ApplicationID set and AccessMode 4.
type SystemUser struct {
	ID, ApplicationID, FullName, InternalEmail, BusinessUnitID string
	IsDisabled                                                 bool
	AccessMode                                                 int
}

// MarketoConfig is the Marketo solution's configuration record.
type MarketoConfig struct{ ID, Name, UserID string }
