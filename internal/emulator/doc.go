// Package emulator is a local, loopback-only stand-in for Microsoft Entra ID, Microsoft Graph
// v1.0 and the Dataverse Web API v9.2, used by the demo and the tests of mktos2s.
//
// It has its own wire types, written from Microsoft's documentation, and shares none with
// internal/graph, internal/dataverse or internal/msapi: a field named wrong in a shared struct
// would be wrong on both sides and every test would still pass. Requests the real services
// reject (unknown body properties, wrong methods, a missing Prefer: create-if-missing, a quoted
// GUID in a Dataverse $filter, a token for the wrong audience or tenant, a permission the caller
// was not granted) are rejected here too, with Microsoft's status codes and error bodies.
//
// One HTTPS listener serves everything (see docs/CONTRACT.md): a Host equal to a seeded org host
// is Dataverse; otherwise /v1.0/... is Graph, /_emulator/... is the admin API (no token, loopback
// only: GET state, GET|POST faults, POST fail, POST reset), /providers/Microsoft.BusinessAppPlatform/...
// is the Power Platform admin API (powerplatform.go) and the rest is Entra.
//
// Operation names, used in logs, in Faults.Routes and by FailNext:
//
//	entra.discovery            GET  /{tenant}/v2.0/.well-known/openid-configuration
//	entra.keys                 GET  /{tenant}/discovery/v2.0/keys
//	entra.token                POST /{tenant}/oauth2/v2.0/token
//	entra.adminConsent         GET|POST /{tenant}/adminconsent (also /{tenant}/v2.0/adminconsent, which requires scope);
//	                           (GET shows the page and grants nothing; POST is its Accept or Cancel, with the page's
//	                           anti-forgery consent_token; adminconsent.go); a Cancel, or a tenant whose consent policy refuses
//	                           (seed adminConsentBlocked), redirects with admin_consent=True&error=consent_required&
//	                           error_description=AADSTS65004…&state, as learn.microsoft.com/entra/identity-platform/v2-admin-consent documents
//	entra.authorize            GET|POST /{tenant}/oauth2/v2.0/authorize (sign-in page, PKCE, prompt; authorize.go)
//	powerplatform.listEnvironments GET  /providers/Microsoft.BusinessAppPlatform/scopes/admin/environments?api-version=2020-10-01
//	powerplatform.addAppUser   POST /providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{env}/addAppUser?api-version=2020-10-01
//	graph.getApplication       GET    /v1.0/applications/{id} | (uniqueName='…') | (appId='…')
//	graph.upsertApplication    PATCH  /v1.0/applications(uniqueName='…') [+ Prefer: create-if-missing]
//	graph.deleteApplication    DELETE /v1.0/applications/{id}
//	graph.addPassword          POST   /v1.0/applications/{id}/addPassword
//	graph.removePassword       POST   /v1.0/applications/{id}/removePassword
//	graph.getServicePrincipal  GET    /v1.0/servicePrincipals/{id} | (appId='…')
//	graph.upsertServicePrincipal PATCH /v1.0/servicePrincipals(appId='…') [+ Prefer: create-if-missing]
//	graph.createServicePrincipal POST  /v1.0/servicePrincipals
//	graph.deleteServicePrincipal DELETE /v1.0/servicePrincipals/{id}
//	graph.listDomains          GET    /v1.0/domains
//	graph.organization         GET    /v1.0/organization
//	graph.listPermissionGrants GET    /v1.0/oauth2PermissionGrants[?$filter=clientId eq '…']
//	graph.listHRDPolicies      GET    /v1.0/policies/homeRealmDiscoveryPolicies
//	graph.createHRDPolicy      POST   /v1.0/policies/homeRealmDiscoveryPolicies
//	graph.getHRDPolicy         GET    /v1.0/policies/homeRealmDiscoveryPolicies/{id}
//	graph.deleteHRDPolicy      DELETE /v1.0/policies/homeRealmDiscoveryPolicies/{id}
//	graph.listAssignedHRDPolicies GET /v1.0/servicePrincipals/{id}/homeRealmDiscoveryPolicies
//	graph.assignHRDPolicy      POST   /v1.0/servicePrincipals/{id}/homeRealmDiscoveryPolicies/$ref
//	graph.unassignHRDPolicy    DELETE /v1.0/servicePrincipals/{id}/homeRealmDiscoveryPolicies/{policyId}/$ref
//	dataverse.whoAmI           GET    /api/data/v9.2/WhoAmI
//	dataverse.listSolutions    GET    /api/data/v9.2/solutions
//	dataverse.listBusinessUnits GET   /api/data/v9.2/businessunits
//	dataverse.listRoles        GET    /api/data/v9.2/roles
//	dataverse.listSystemUsers  GET    /api/data/v9.2/systemusers
//	dataverse.createSystemUser POST   /api/data/v9.2/systemusers
//	dataverse.getSystemUser    GET    /api/data/v9.2/systemusers({id})
//	dataverse.updateSystemUser PATCH  /api/data/v9.2/systemusers({id})
//	dataverse.deleteSystemUser DELETE /api/data/v9.2/systemusers({id})   (only once disabled)
//	dataverse.listUserRoles    GET    /api/data/v9.2/systemusers({id})/systemuserroles_association
//	dataverse.associateRole    POST   /api/data/v9.2/systemusers({id})/systemuserroles_association/$ref
//	dataverse.disassociateRole DELETE /api/data/v9.2/systemusers({id})/systemuserroles_association({roleid})/$ref
//	                                  or …/systemuserroles_association/$ref?$id=…
//	dataverse.listMarketoConfigs GET  /api/data/v9.2/{marketo config entity set}
//	dataverse.updateMarketoConfig PATCH /api/data/v9.2/{entity set}({id})  ("{lookup}@odata.bind": "/systemusers(…)" or null)
//	dataverse.clearMarketoConfigUser DELETE /api/data/v9.2/{entity set}({id})/{lookup}/$ref
//	dataverse.publishAllXml    POST   /api/data/v9.2/PublishAllXml
//	dataverse.listAttributes   GET    /api/data/v9.2/EntityDefinitions(LogicalName='…')/Attributes
//	dataverse.getAttribute     GET    /api/data/v9.2/EntityDefinitions(LogicalName='…')/Attributes(LogicalName='…')
//	dataverse.createAttribute  POST   /api/data/v9.2/EntityDefinitions(LogicalName='…')/Attributes
//
// Dataverse bodies are read as Dataverse reads them: property names are case-sensitive at every
// depth (strict.go); an absolute @odata.id/@odata.bind must be based on the org's own
// https://{org}/api/data/v9.2/ (another host, scheme or version: 400 0x80048d19); PublishAllXml
// takes no parameters (no body or {}); a Boolean column needs the documented
// BooleanAttributeMetadata with RequiredLevel (columns.go). A throttled Dataverse request gets one
// of the three service protection codes 0x80072322, 0x80072321, 0x80072326 (throttleCode pins one).
//
// Faults (seed "faults" or POST /_emulator/faults with the JSON form of Faults) pick the most
// specific entry of Routes: the operation name, then the service ("entra", "graph",
// "dataverse"), then the global values. FailNext (or POST /_emulator/fail
// {"op","times","status","code"}) fails an operation the next N times (N<0: always) with the
// service's error body carrying code. FailNextTenant (or "tenant" in that body) limits the rule to
// the Graph and Dataverse requests of one tenant, checked after the token.
//
// Lost answers (lostanswer.go): a write is applied and then its answer is lost, as when a gateway
// times out after the backend committed: a 500, a reset stream, or a stall until the caller gives
// up. Routes take lostAnswerProbability/lostAnswerMode/stallMs; LoseNextTenant (or POST
// /_emulator/lose {"op","tenant","times","mode"}) loses the next N answers of one tenant's writes
// that land (a refused write keeps its answer). LostAnswers (GET /_emulator/lost) counts them per
// operation and mode.
//
// State lists, per tenant, every client secret added or removed (PasswordEvents: key ID, display
// name, time; never the value), so tests can check that no secret was added while another with
// the same display name was live.
//
// Secrets are stored as SHA-256 hashes; neither State, the state endpoint nor the logs (one line
// per request: method, host, path, status, op, request-id) ever carry a secret, token or assertion.
package emulator
