package emulator

import (
	"strings"
	"time"
)

// Password audit actions.
const (
	PasswordAdded      = "add"
	PasswordRemoved    = "remove"
	PasswordAppDeleted = "app-deleted" // the secret went away with its application
)

// PasswordEvent records that a client secret appeared or disappeared. It
// carries the key ID and display name, never the value or hint, so that
// tests can prove no secret was added while an earlier one with the same
// display name was still live, across crashes and retries.
type PasswordEvent struct {
	Time        time.Time `json:"time"`
	Action      string    `json:"action"`
	AppObjectID string    `json:"appObjectId"`
	AppID       string    `json:"appId"`
	KeyID       string    `json:"keyId"`
	DisplayName string    `json:"displayName"`
}

// auditPassword appends one event; the caller holds s.mu.
func (s *Server) auditPassword(t *tenant, action string, a *application, p *password) {
	t.passwordLog = append(t.passwordLog, PasswordEvent{
		Time: s.now(), Action: action, AppObjectID: a.id, AppID: a.appID, KeyID: p.keyID, DisplayName: p.displayName,
	})
}

// FailNextTenant is FailNext for the Graph and Dataverse requests of one
// tenant only (Graph: a token of that tenant; Dataverse: an org of that
// tenant), so a test can break one onboarding among many. The failure is
// decided after the token check, as a real permission error would be.
func (s *Server) FailNextTenant(tenantID, op string, times int, status int, code string) {
	s.FailNext(tenantRuleKey(tenantID, op), times, status, code)
}

func tenantRuleKey(tenantID, op string) string { return op + "@" + strings.ToLower(tenantID) }

// tenantID is the tenant an authenticated Graph or Dataverse call acts in.
func (c *call) tenantID() string {
	switch {
	case c.tenant != nil:
		return c.tenant.id
	case c.org != nil:
		return strings.ToLower(c.org.tenantID)
	}
	return ""
}
