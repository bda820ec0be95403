package consent

import (
	"bytes"
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mktos2s/mktos2s/internal/inert"
)

// SessionSignal is what the session callback tells the onboarding. The
// code is sealed (SealCode); nothing in it is usable without the worker.
type SessionSignal struct {
	WorkflowID, RunID, SealedCode, Nonce  string
	SignedInAt                            time.Time
	Error, ErrorSubcode, ErrorDescription string // Entra's answer instead of a code
}

// SessionBackend is the Temporal side of the session callback.
type SessionBackend interface {
	SignalSession(ctx context.Context, s SessionSignal) error
	// Next says where the admin's browser goes after the sign-in: the
	// Marketo app's admin-consent URL once the onboarding built it, or the
	// failure when the onboarding ended; neither while it is still working.
	Next(ctx context.Context, workflowID string) (consentURL, failure string, err error)
}

// SessionHandler serves the session redirect URI (…/consent/session): the
// provisioner's admin consent comes back here and is continued to the
// sign-in; the sign-in's code is sealed and signalled; then the same browser
// is forwarded to the Marketo app's consent screen when the onboarding
// reaches it.
type SessionHandler struct {
	Signer        *Signer
	Guard         ReplayGuard
	Backend       SessionBackend
	AuthorityHost string // "" = DefaultAuthorityHost
	ClientID      string // the provisioner's
	RedirectURI   string // this handler's absolute URL (SessionRedirectURI)
	Scope         string // delegated scope + offline_access
	Log           *slog.Logger
}

var sessionTmpl = template.Must(template.New("session").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mktos2s: {{.Title}}</title>
{{with .Refresh}}<meta http-equiv="refresh" content="3;url={{.}}">{{end}}</head>
<body><h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{with .Next}}<p>{{.}}</p>
{{end}}</body></html>
`))

type sessionPage struct {
	Status                 int
	Title, Message, Next   string
	Refresh                string // relative URL this page reloads to
	redirect, reason, wfID string
}

func (h *SessionHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := h.handle(r)
	log := h.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Never the state, the code or Entra's text: the state is a capability
	// until used, the code a credential.
	log.LogAttrs(r.Context(), slog.LevelInfo, "admin-session callback", slog.String("workflowId", p.wfID),
		slog.Int("status", p.Status), slog.String("result", p.reason), slog.String("remote", r.RemoteAddr))
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Content-Type-Options", "nosniff")
	if p.redirect != "" {
		http.Redirect(w, r, p.redirect, http.StatusFound)
		return
	}
	var b bytes.Buffer
	if err := sessionTmpl.Execute(&b, p); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	w.WriteHeader(p.Status)
	_, _ = w.Write(b.Bytes())
}

const askForSessionLink = "Ask the person running the onboarding for its current link (`starter status` shows it)."

func (h *SessionHandler) handle(r *http.Request) sessionPage {
	if r.Method != http.MethodGet {
		return sessionPage{Status: http.StatusMethodNotAllowed, Title: "Method not allowed", Message: "This address only answers GET.", reason: "method"}
	}
	q := r.URL.Query()
	c, err := h.Signer.Verify(q.Get("state"))
	if err != nil {
		msg := "This link is not one mktos2s issued, or it was altered."
		if errors.Is(err, ErrExpired) {
			msg = "This link has expired."
		}
		return sessionPage{Status: http.StatusBadRequest, Title: "Link not valid", Message: msg, Next: askForSessionLink, reason: "state: " + err.Error()}
	}
	p := sessionPage{wfID: c.WorkflowID}
	ctx := r.Context()
	switch {
	case strings.HasSuffix(r.URL.Path, "/next"):
		return h.next(ctx, c, q.Get("state"))
	case q.Get("error") != "":
		// Cancelled or refused: said to the onboarding (it records it and
		// keeps waiting, C1), and to the admin.
		desc := truncate(inert.Text(q.Get("error_description")), 300)
		if err := h.Backend.SignalSession(ctx, SessionSignal{WorkflowID: c.WorkflowID, RunID: c.RunID,
			Error: truncate(inert.Text(q.Get("error")), 60), ErrorSubcode: truncate(inert.Text(q.Get("error_subcode")), 30), ErrorDescription: desc}); err != nil {
			p.reason = "signal failed: " + err.Error()
		} else {
			p.reason = "entra error reported"
		}
		p.Status, p.Title = http.StatusOK, "Sign-in not completed"
		p.Message = "Microsoft answered: " + desc
		if q.Get("error_subcode") == "cancel" {
			p.Message = "You cancelled the sign-in."
		}
		p.Next = "Nothing was changed. To continue, open the same link again and sign in as a Power Platform administrator (or Global administrator) of your organisation."
		if q.Get("error") == "consent_required" {
			// The admin-consent screen's answer (v2-admin-consent, "Error
			// response"): a Cancel, or the tenant's consent policy.
			p.Title = "Consent not granted"
			p.Next = "Nothing was changed. To continue, open the same link again as a Global Administrator or Privileged Role Administrator and choose Accept; " +
				"if Microsoft names a consent policy, an administrator first allows the app in the Microsoft Entra admin center (Enterprise applications > Consent and permissions)."
		}
		return p
	case q.Get("code") != "":
		if err := h.Guard.Use(ctx, c.Nonce, c.Expires); err != nil {
			return sessionPage{Status: http.StatusConflict, Title: "Link already used", Message: "This sign-in was delivered already.",
				Next: askForSessionLink, reason: "replay", wfID: c.WorkflowID}
		}
		sealed, err := h.Signer.SealCode(q.Get("code"), c.WorkflowID)
		if err == nil {
			err = h.Backend.SignalSession(ctx, SessionSignal{WorkflowID: c.WorkflowID, RunID: c.RunID, SealedCode: sealed, Nonce: c.Nonce, SignedInAt: time.Now().UTC()})
		}
		if err != nil {
			_ = h.Guard.Release(ctx, c.Nonce)
			return sessionPage{Status: http.StatusBadGateway, Title: "Could not reach the onboarding", Message: "Your sign-in could not be handed to the onboarding.",
				Next: "Open the same link again in a few minutes.", reason: "signal failed: " + err.Error(), wfID: c.WorkflowID}
		}
		p.Status, p.Title, p.reason = http.StatusOK, "Signed in", "code signalled"
		p.Message = "Thank you. mktos2s is adding itself to your Dynamics environment and registering the Marketo app."
		p.Next = "Keep this page open: it takes you to the last screen, the Marketo app's consent, when it is ready."
		p.Refresh = "session/next?" + url.Values{"state": {q.Get("state")}}.Encode()
		return p
	case strings.EqualFold(q.Get("admin_consent"), "true"):
		if err := h.Guard.Use(ctx, c.Nonce, c.Expires); err != nil {
			return sessionPage{Status: http.StatusConflict, Title: "Link already used", Message: "This consent was delivered already.",
				Next: askForSessionLink, reason: "replay", wfID: c.WorkflowID}
		}
		u, err := h.Signer.SignInURL(h.AuthorityHost, c.TenantID, h.ClientID, h.RedirectURI, c.WorkflowID, c.RunID, h.Scope)
		if err != nil {
			return sessionPage{Status: http.StatusInternalServerError, Title: "Configuration problem", Message: "The sign-in could not be prepared.",
				Next: askForSessionLink, reason: "sign-in URL: " + err.Error(), wfID: c.WorkflowID}
		}
		p.redirect, p.reason = u, "consented; continued to the sign-in"
		return p
	}
	return sessionPage{Status: http.StatusBadRequest, Title: "Unexpected answer", Message: "Microsoft sent neither a consent, a code nor an error.",
		Next: askForSessionLink, reason: "no admin_consent, code or error", wfID: c.WorkflowID}
}

// next forwards the browser to the Marketo app's consent once the
// onboarding shows it; the state is only checked for its signature here
// (it was used for the code already), and this page changes nothing.
func (h *SessionHandler) next(ctx context.Context, c Claims, state string) sessionPage {
	p := sessionPage{wfID: c.WorkflowID, Status: http.StatusOK}
	consentURL, failure, err := h.Backend.Next(ctx, c.WorkflowID)
	switch {
	case err != nil:
		p.Title, p.Message, p.reason = "Still working", "mktos2s is working on your onboarding.", "progress: "+err.Error()
	case consentURL != "":
		p.redirect, p.reason = consentURL, "forwarded to the app's consent"
		return p
	case failure != "":
		p.Title, p.reason = "The onboarding stopped", "onboarding failed"
		p.Message = truncate(inert.Text(failure), 600)
		p.Next = "Send this message to the person running the onboarding."
		return p
	default:
		p.Title, p.Message, p.reason = "Still working", "mktos2s is adding itself to your Dynamics environment and registering the Marketo app.", "waiting"
	}
	p.Next = "This page reloads by itself."
	p.Refresh = "next?" + url.Values{"state": {state}}.Encode()
	return p
}
