package cli

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"

	"go.temporal.io/sdk/converter"

	"github.com/mktos2s/mktos2s/internal/config"
	"github.com/mktos2s/mktos2s/internal/consent"
	"github.com/mktos2s/mktos2s/internal/powerplatform"
	"github.com/mktos2s/mktos2s/internal/workerapp"
	"github.com/mktos2s/mktos2s/workflows"
)

// sessionClient is the part of client.Client the session callback uses.
type sessionClient interface {
	signaler
	QueryWorkflow(ctx context.Context, workflowID, runID, queryType string, args ...any) (converter.EncodedValue, error)
}

// sessionBackend signals the admin session to the run its link was made for
// and reads the onboarding's progress for the browser's next screen.
type sessionBackend struct{ c sessionClient }

func (b sessionBackend) SignalSession(ctx context.Context, s consent.SessionSignal) error {
	run, err := runOfLink(ctx, b.c, s.WorkflowID, s.RunID)
	if err != nil {
		return err
	}
	return b.c.SignalWorkflow(ctx, s.WorkflowID, run, workflows.SignalAdminSession, workflows.AdminSessionSignal{
		SealedCode: s.SealedCode, Nonce: s.Nonce, RunID: s.RunID, SignedInAt: s.SignedInAt,
		Error: s.Error, ErrorSubcode: s.ErrorSubcode, ErrorDescription: s.ErrorDescription,
	})
}

func (b sessionBackend) Next(ctx context.Context, workflowID string) (string, string, error) {
	v, err := b.c.QueryWorkflow(ctx, workflowID, "", workflows.QueryProgress)
	if err != nil {
		return "", "", err
	}
	var p workflows.Progress
	if err := v.Get(&p); err != nil {
		return "", "", err
	}
	switch {
	case p.Status == workflows.StatusFailed || p.Status == workflows.StatusCancelled:
		return "", p.Error, nil
	case p.ConsentURL != "" && !p.ConsentVerified:
		return p.ConsentURL, "", nil
	}
	return "", "", nil
}

// withSessionCallback serves the admin-session callback (consent.SessionRedirectURI
// of consent.redirectURI, and its /next page) in front of next. Without a
// callback key there is no session mode, and next is returned as it is.
func withSessionCallback(cfg config.Config, c sessionClient, logger *slog.Logger, next http.Handler) (http.Handler, error) {
	if next == nil {
		next = http.NotFoundHandler()
	}
	signer, err := workerapp.NewConsentSigner(cfg.Consent)
	if err != nil || signer == nil {
		return next, err
	}
	redirect, err := consent.SessionRedirectURI(cfg.Consent.RedirectURI)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(redirect)
	h := &consent.SessionHandler{
		Signer: signer, Guard: consent.NewMemoryGuard(0, nil), Backend: sessionBackend{c},
		AuthorityHost: cfg.Microsoft.AuthorityHost, ClientID: cfg.Microsoft.Provisioner.ClientID, RedirectURI: redirect,
		Scope: powerplatform.DelegatedScope + " offline_access", Log: logger,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == u.Path || r.URL.Path == u.Path+"/next" {
			h.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	}), nil
}
