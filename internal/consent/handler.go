package consent

import (
	"bytes"
	"context"
	"errors"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mktos2s/mktos2s/internal/inert"
)

// Signal is what the callback tells an onboarding: the admin's answer as
// Entra's redirect reported it. Anyone holding the link can produce such a
// redirect, so the onboarding treats it as a report: a grant is verified in
// Entra, a denial is shown to the operator and does not end the wait.
type Signal struct {
	WorkflowID string
	RunID      string // first run the link was made for; empty for links signed before runs were bound
	Granted    bool
	By         string
	Note       string // Entra's error_description of a denial, truncated; outside text
}

// Signaler delivers the admin-consent signal to an onboarding workflow. The
// production one wraps the Temporal client's SignalWorkflow (signal
// "admin-consent", payload {"granted","by","note","source":"callback","runId"}),
// returns ErrOtherRun when the running onboarding is not the run s.RunID
// names, and wraps Temporal's not-found error in ErrUnknownWorkflow.
type Signaler interface {
	SignalConsent(ctx context.Context, s Signal) error
}

// SignalerFunc adapts a function to Signaler.
type SignalerFunc func(ctx context.Context, s Signal) error

// SignalConsent implements Signaler.
func (f SignalerFunc) SignalConsent(ctx context.Context, s Signal) error { return f(ctx, s) }

var (
	// ErrUnknownWorkflow is what a Signaler wraps when the workflow is not
	// running (finished, cancelled or never started): retrying cannot help.
	ErrUnknownWorkflow = errors.New("onboarding workflow is not running")
	// ErrOtherRun is what a Signaler returns when the workflow ID runs an
	// onboarding other than the one the link was made for (an earlier one
	// was cancelled or failed and the tenant and org were started again).
	ErrOtherRun = errors.New("the consent link belongs to another onboarding of this tenant and org")
)

// SignalBy is the "by" of signals sent by the callback: Entra's redirect does
// not say which admin consented.
const SignalBy = "Entra admin-consent callback"

const (
	signalTimeout = 10 * time.Second
	// maxNoteRunes bounds the error_description kept in workflow history.
	maxNoteRunes = 500
)

// Handler serves the redirect URI Entra sends the admin to after the
// admin-consent page, e.g. GET /consent/callback?admin_consent=True&tenant=…&state=…
// or …?error=access_denied&error_description=…&state=…
type Handler struct {
	signer   *Signer
	guard    ReplayGuard
	signaler Signaler
	log      *slog.Logger
}

// NewHandler returns the callback handler. logger may be nil.
func NewHandler(signer *Signer, guard ReplayGuard, signaler Signaler, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Handler{signer: signer, guard: guard, signaler: signaler, log: logger}
}

// page is what the admin sees; html/template escapes every field.
type page struct {
	Status  int
	Title   string
	Message string
	Next    string
	reason  string // for the log
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mktos2s: {{.Title}}</title></head>
<body><h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{with .Next}}<p>{{.}}</p>
{{end}}</body></html>
`))

const askForLink = "Ask the person running the onboarding for its current consent link (`starter status` shows it)."

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, attrs := h.handle(r)
	level := slog.LevelInfo
	if p.Status >= 400 {
		level = slog.LevelWarn
	}
	// Never the state: until used it is a capability.
	h.log.LogAttrs(r.Context(), level, "admin-consent callback", append(attrs,
		slog.Int("status", p.Status), slog.String("result", p.reason), slog.String("remote", r.RemoteAddr))...)
	if p.Status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodGet)
	}
	var b bytes.Buffer
	if err := pageTmpl.Execute(&b, p); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	// The URL holds the state: no referrer, no framing, no scripts or loads.
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	w.WriteHeader(p.Status)
	_, _ = w.Write(b.Bytes())
}

func (h *Handler) handle(r *http.Request) (page, []slog.Attr) {
	if r.Method != http.MethodGet {
		return page{Status: http.StatusMethodNotAllowed, Title: "Method not allowed",
			Message: "This address only receives Entra's admin-consent redirect (GET).", reason: "method"}, nil
	}
	q := r.URL.Query()
	for _, k := range []string{"state", "tenant", "admin_consent", "error", "error_description"} {
		if len(q[k]) > 1 {
			return page{Status: http.StatusBadRequest, Title: "Invalid callback",
				Message: "The parameter " + k + " appears more than once, so the callback was ignored.", Next: askForLink, reason: "duplicate-param"}, nil
		}
	}
	state := q.Get("state")
	if state == "" {
		return page{Status: http.StatusBadRequest, Title: "Missing state",
			Message: "This address receives Entra's redirect after the admin-consent page, which carries a state parameter; this request has none.",
			Next:    "Open the consent link of the onboarding instead of this address. " + askForLink, reason: "missing-state"}, nil
	}
	c, err := h.signer.Verify(state)
	switch {
	case errors.Is(err, ErrExpired):
		return page{Status: http.StatusForbidden, Title: "Consent link expired",
			Message: "This consent link expired at " + c.Expires.Format(time.RFC1123) + ", so the callback was not recorded.",
			Next:    "If you granted consent in Entra, the onboarding still finds the grant at its next check. Otherwise: " + askForLink,
			reason:  "expired"}, claimAttrs(c)
	case errors.Is(err, ErrBadSignature):
		return page{Status: http.StatusForbidden, Title: "Consent link not recognised",
			Message: "The state parameter was not issued by this mktos2s installation (or was altered), so the callback was ignored.",
			Next:    askForLink, reason: "bad-signature"}, nil
	case err != nil:
		return page{Status: http.StatusBadRequest, Title: "Damaged consent link",
			Message: "The state parameter is damaged, perhaps cut off when the link was copied, so the callback was ignored.",
			Next:    askForLink, reason: "malformed"}, nil
	}
	attrs := claimAttrs(c)

	tenant := q.Get("tenant")
	var granted bool
	var note string
	switch code := q.Get("error"); {
	// Entra's admin-consent endpoint answers a cancel with
	// admin_consent=True&error=consent_required&error_description=AADSTS65004…
	// (v2-admin-consent, "Error response"): the error decides, never the flag.
	case code == "access_denied", code == "consent_required":
		note = truncate(inert.Text(q.Get("error_description")), maxNoteRunes)
	case code != "":
		// Not a decision by the admin (e.g. server_error): record nothing,
		// leave the link usable.
		return page{Status: http.StatusBadGateway, Title: "Entra reported an error",
			Message: "Entra returned " + truncate(inert.Text(code), 100) + ": " + truncate(inert.Text(q.Get("error_description")), maxNoteRunes) + ". Nothing was recorded.",
			Next:    "Open the same consent link again; if the error persists, pass this message on to the person running the onboarding.",
			reason:  "entra-error"}, attrs
	case strings.EqualFold(q.Get("admin_consent"), "true"):
		granted = true
		if tenant == "" {
			return page{Status: http.StatusBadRequest, Title: "Invalid callback",
				Message: "Entra's answer names no tenant, so the consent could not be matched to the onboarding.",
				Next:    askForLink, reason: "missing-tenant"}, attrs
		}
	default:
		return page{Status: http.StatusBadRequest, Title: "Invalid callback",
			Message: "The request carries neither admin_consent=True nor an error from Entra, so nothing was recorded.",
			Next:    askForLink, reason: "no-outcome"}, attrs
	}
	// Entra names the tenant the admin signed in to; consent given in
	// another tenant does not help this onboarding.
	if tenant != "" && !strings.EqualFold(tenant, c.TenantID) {
		return page{Status: http.StatusForbidden, Title: "Wrong tenant",
			Message: "Consent was given in tenant " + truncate(inert.Text(tenant), 64) + ", but this link is for the onboarding of tenant " + c.TenantID + ", so it was not recorded.",
			Next:    "Sign in as an administrator of tenant " + c.TenantID + " and open the consent link again.",
			reason:  "tenant-mismatch"}, append(attrs, slog.String("callbackTenant", truncate(inert.Text(tenant), 64)))
	}

	switch err := h.guard.Use(r.Context(), c.Nonce, c.Expires); {
	case errors.Is(err, ErrReplayed):
		return page{Status: http.StatusForbidden, Title: "Consent link already used",
			Message: "This consent link has already been used; a link is accepted once.",
			Next:    "If that was you, there is nothing more to do. Otherwise: " + askForLink, reason: "replayed"}, attrs
	case err != nil:
		return page{Status: http.StatusServiceUnavailable, Title: "Try again later",
				Message: "The callback could not be recorded right now.", Next: "Reload this page in a minute.", reason: "guard-error"},
			append(attrs, slog.String("error", err.Error()))
	}

	ctx, cancel := context.WithTimeout(r.Context(), signalTimeout)
	defer cancel()
	sig := Signal{WorkflowID: c.WorkflowID, RunID: c.RunID, Granted: granted, By: SignalBy + " (tenant " + c.TenantID + ")", Note: note}
	if err := h.signaler.SignalConsent(ctx, sig); err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
		if errors.Is(err, ErrOtherRun) {
			return page{Status: http.StatusGone, Title: "Consent link of an earlier onboarding",
				Message: "This consent link belongs to an earlier onboarding of " + c.OrgHost + ", which has ended; the onboarding running now was started again and has its own link. Nothing was recorded.",
				Next:    askForLink, reason: "other-run"}, attrs
		}
		if errors.Is(err, ErrUnknownWorkflow) {
			return page{Status: http.StatusGone, Title: "Onboarding no longer running",
				Message: "The onboarding of " + c.OrgHost + " has already finished or was cancelled, so nothing was recorded.",
				Next:    askForLink, reason: "workflow-gone"}, attrs
		}
		// The link stays usable, so reloading retries.
		if rerr := h.guard.Release(context.WithoutCancel(r.Context()), c.Nonce); rerr != nil {
			attrs = append(attrs, slog.String("releaseError", rerr.Error()))
		}
		return page{Status: http.StatusServiceUnavailable, Title: "Try again in a minute",
			Message: "Your answer could not be passed to the onboarding right now.",
			Next:    "Reload this page in a minute; the link stays valid until it is recorded.", reason: "signal-error"}, attrs
	}
	if !granted {
		// A denial cannot be checked in Entra, and anyone with the link can
		// send one, so it is passed on, not acted on. Entra answers a Cancel
		// and a consent its tenant's policy refuses alike (consent_required,
		// AADSTS65004), so the page says how to get past both.
		why := ""
		if note != "" {
			why = " Entra said: " + note
		}
		return page{Status: http.StatusOK, Title: "Refusal passed on",
			Message: "Consent for " + c.TenantID + " was not granted, and this was passed on to the person running the onboarding." + why,
			Next: "To grant it after all, open the consent link again signed in as a Global Administrator, Privileged Role Administrator or " +
				"Cloud Application Administrator of " + c.TenantID + " and choose Accept; if Entra names a consent policy, an administrator first allows " +
				"the app in the Microsoft Entra admin center (Enterprise applications > Consent and permissions). The onboarding of " + c.OrgHost +
				" finds the grant at its next check; until then it keeps waiting until it is stopped, or until its consent timeout.", reason: "denied"}, attrs
	}
	return page{Status: http.StatusOK, Title: "Consent recorded",
		Message: "Consent recorded for " + c.TenantID + "; you can close this tab.",
		Next:    "The onboarding of " + c.OrgHost + " checks the grant in Entra and continues.", reason: "granted"}, attrs
}

func claimAttrs(c Claims) []slog.Attr {
	return []slog.Attr{slog.String("workflowId", c.WorkflowID), slog.String("runId", c.RunID)}
}

// truncate keeps at most n runes of s and drops invalid UTF-8, so hostile
// input stays small in pages, logs and workflow history.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}

// CallbackPath is the path of a redirect URI, for mounting the Handler on
// the same path that is registered on the app.
func CallbackPath(redirectURI string) (string, error) {
	u, err := url.Parse(redirectURI)
	if err != nil || !u.IsAbs() {
		return "", errors.New("consent redirect URI must be an absolute URL (consent.redirectURI)")
	}
	if u.Path == "" {
		return "/", nil
	}
	return u.Path, nil
}
