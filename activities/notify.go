package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
)

// Consent hand-off notifications (consent.webhookURL): a JSON message to a
// Teams or Slack incoming webhook when an onboarding starts waiting for the
// customer's admin, and a reminder before the wait times out.
const (
	NotifyWaiting  = "consent-waiting"
	NotifyReminder = "consent-reminder"
)

// ErrWebhookRefused: the webhook answered 4xx (not 408/429); retrying the
// same message cannot help. The onboarding goes on without it.
const ErrWebhookRefused = "WebhookRefused"

// Webhook is where notifications go; a nil *Webhook or an empty URL sends
// nothing. The URL usually embeds the channel's token: it is never logged,
// never in a payload and never in an error.
type Webhook struct {
	URL string
	// HTTP is the client; nil = one with a 10 s timeout. Redirects are
	// never followed: the message carries the consent link.
	HTTP *http.Client
}

// NotifyConsentInput is the message's content: IDs, the link and its expiry.
type NotifyConsentInput struct {
	Kind       string    `json:"kind"` // NotifyWaiting or NotifyReminder
	WorkflowID string    `json:"workflowId"`
	TenantID   string    `json:"tenantId"`
	OrgHost    string    `json:"orgHost"`
	AppName    string    `json:"appName"`
	ConsentURL string    `json:"consentUrl"`
	ExpiresAt  time.Time `json:"expiresAt"`
}

// NotifyConsentResult says whether a message was sent.
type NotifyConsentResult struct {
	Sent   bool `json:"sent"`
	Status int  `json:"status,omitempty"`
}

// WebhookMessage is the JSON body posted to consent.webhookURL. "text" is
// what Slack and Teams incoming webhooks show; the other fields are for
// receivers that parse the message. The shape is stable (README "Many tenants").
type WebhookMessage struct {
	Text       string    `json:"text"`
	Kind       string    `json:"kind"`
	ID         string    `json:"id"` // the same for every retry of one message: receivers may drop duplicates
	WorkflowID string    `json:"workflowId"`
	TenantID   string    `json:"tenantId"`
	OrgHost    string    `json:"orgHost"`
	App        string    `json:"app"`
	Permission string    `json:"permission"`
	ConsentURL string    `json:"consentUrl"`
	ExpiresAt  time.Time `json:"expiresAt"`
}

// ConsentPermission is what the customer's admin consents to.
const ConsentPermission = "Dynamics CRM user_impersonation (delegated), for the app's Dataverse application user"

// Message builds the webhook body of in.
func (in NotifyConsentInput) Message() WebhookMessage {
	verb := "is waiting for"
	if in.Kind == NotifyReminder {
		verb = "REMINDER: still waiting for"
	}
	text := fmt.Sprintf("mktos2s: the onboarding of tenant %s (Dynamics org %s) %s the admin consent of a Global Administrator. "+
		"They consent to the app %q getting %s. Link: %s — it expires %s.",
		in.TenantID, in.OrgHost, verb, in.AppName, ConsentPermission, in.ConsentURL, in.ExpiresAt.UTC().Format(time.RFC1123))
	return WebhookMessage{
		Text: text, Kind: in.Kind, ID: in.WorkflowID + "/" + in.Kind + "/" + in.ExpiresAt.UTC().Format(time.RFC3339),
		WorkflowID: in.WorkflowID, TenantID: in.TenantID, OrgHost: in.OrgHost, App: in.AppName, Permission: ConsentPermission,
		ConsentURL: in.ConsentURL, ExpiresAt: in.ExpiresAt.UTC(),
	}
}

// NotifyConsent posts the consent hand-off message to the webhook. Network
// errors, 408, 429 (after Retry-After) and 5xx are retried by Temporal; any
// other 4xx and redirects are not. Without a webhook it sends nothing.
func (a *Activities) NotifyConsent(ctx context.Context, in NotifyConsentInput) (NotifyConsentResult, error) {
	wh := a.deps.Webhook
	if wh == nil || wh.URL == "" {
		return NotifyConsentResult{}, nil
	}
	body, err := json.Marshal(in.Message())
	if err != nil {
		return NotifyConsentResult{}, temporal.NewNonRetryableApplicationError("encode the webhook message: "+err.Error(), ErrInvalidRequest, nil)
	}
	hc := wh.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	noRedirect := *hc
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, wh.URL, bytes.NewReader(body))
	if err != nil {
		return NotifyConsentResult{}, temporal.NewNonRetryableApplicationError("consent.webhookURL is not a valid URL", ErrInvalidRequest, nil)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := noRedirect.Do(req)
	if err != nil {
		// The error names the URL, which may hold the webhook's token.
		var ue interface{ Unwrap() error }
		msg := "the webhook did not answer"
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			msg += ": " + strings.ReplaceAll(ue.Unwrap().Error(), wh.URL, "[consent.webhookURL]")
		}
		return NotifyConsentResult{}, temporal.NewApplicationError(msg, ErrTransient)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return NotifyConsentResult{Sent: true, Status: code}, nil
	case code == http.StatusTooManyRequests:
		delay := 30 * time.Second
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			delay = time.Duration(s) * time.Second
		}
		return NotifyConsentResult{}, temporal.NewApplicationErrorWithOptions(fmt.Sprintf("the webhook throttled the message (HTTP %d)", code), ErrThrottled,
			temporal.ApplicationErrorOptions{NextRetryDelay: delay})
	case code == http.StatusRequestTimeout || code >= 500:
		return NotifyConsentResult{}, temporal.NewApplicationError(fmt.Sprintf("the webhook answered HTTP %d", code), ErrTransient)
	case code >= 300 && code < 400:
		return NotifyConsentResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("the webhook answered a redirect (HTTP %d), which is not followed; set consent.webhookURL to the final URL", code), ErrWebhookRefused, nil)
	default:
		return NotifyConsentResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("the webhook refused the message (HTTP %d); check consent.webhookURL (MKTOS2S_CONSENT_WEBHOOKURL)", code), ErrWebhookRefused, nil)
	}
}
