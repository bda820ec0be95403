package testenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/workflows"
)

// StartOnboarding starts an Onboarding workflow as the starter does: under
// its fixed workflow ID, on the fixed task queue.
func StartOnboarding(ctx context.Context, c client.Client, in workflows.OnboardingInput) (client.WorkflowRun, error) {
	in = in.WithDefaults()
	if err := in.Validate(); err != nil {
		return nil, err
	}
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        in.WorkflowID(),
		TaskQueue: workflows.TaskQueue,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SearchTenantID.ValueSet(in.TenantID),
			workflows.SearchOrgHost.ValueSet(in.OrgHost()),
		),
	}, workflows.WorkflowType, in)
	if err != nil {
		return nil, fmt.Errorf("testenv: start %s: %w", in.WorkflowID(), err)
	}
	return run, nil
}

// Progress queries the workflow's progress.
func Progress(ctx context.Context, c client.Client, workflowID string) (workflows.Progress, error) {
	var p workflows.Progress
	v, err := c.QueryWorkflow(ctx, workflowID, "", workflows.QueryProgress)
	if err != nil {
		return p, err
	}
	return p, v.Get(&p)
}

// WaitProgress polls the progress query until done returns true, and
// returns that progress. A workflow that closed first is an error.
func WaitProgress(ctx context.Context, c client.Client, workflowID string, timeout time.Duration, done func(workflows.Progress) bool) (workflows.Progress, error) {
	var last workflows.Progress
	err := Poll(ctx, timeout, func() error {
		p, err := Progress(ctx, c, workflowID)
		if err != nil {
			return err
		}
		last = p
		if done(p) {
			return nil
		}
		if p.Status == workflows.StatusFailed || p.Status == workflows.StatusCompleted || p.Status == workflows.StatusCancelled {
			return stop{fmt.Errorf("workflow %s ended (%s at %s: %s)", workflowID, p.Status, p.Step, p.Error)}
		}
		return fmt.Errorf("workflow %s is at %s (%s)", workflowID, p.Step, p.Status)
	})
	return last, err
}

// GrantConsent plays the tenant admin: it opens the consent URL the workflow
// published, trusting only the emulator's CA, clicks Accept on the page, and expects the emulator to
// redirect to the registered URI with admin_consent=True. The redirect is not
// followed. A URL that does not point at the emulator is refused, so the test
// can never reach beyond loopback.
func (e *Env) GrantConsent(ctx context.Context, consentURL string) error {
	return GrantConsent(ctx, e.Emu, consentURL)
}

// GrantConsent is Env.GrantConsent for any running emulator, e.g. the one
// of the starter's dev stack. As the redirect is not followed, no consent
// callback runs and nothing signals the workflow.
func GrantConsent(ctx context.Context, emu *emulator.Server, consentURL string) error {
	_, err := GrantConsentRedirect(ctx, emu, consentURL)
	return err
}

// GrantConsentRedirect is GrantConsent, returning where the emulator
// redirects the admin (the consent callback, for a caller that visits it).
func GrantConsentRedirect(ctx context.Context, emu *emulator.Server, consentURL string) (*url.URL, error) {
	u, err := url.Parse(consentURL)
	if err != nil {
		return nil, fmt.Errorf("testenv: consent URL: %w", err)
	}
	emuURL, _ := url.Parse(emu.URL())
	if u.Scheme != "https" || u.Host != emuURL.Host {
		return nil, fmt.Errorf("testenv: consent URL %s does not point at the emulator %s", consentURL, emu.URL())
	}
	// The page, then its Accept: the emulator's GET grants nothing.
	resp, err := emulator.AnswerConsent(ctx, emulatorHTTP(emu), consentURL, true)
	if err != nil {
		return nil, fmt.Errorf("testenv: consent: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusFound {
		return nil, fmt.Errorf("testenv: consent page answered %d: %s", resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return nil, fmt.Errorf("testenv: consent redirect: %w", err)
	}
	if e := loc.Query().Get("error"); e != "" {
		return nil, fmt.Errorf("testenv: consent redirect %s carries error=%s", loc.Redacted(), e)
	}
	if got := loc.Query().Get("admin_consent"); got != "True" {
		return nil, fmt.Errorf("testenv: consent redirect %s has admin_consent=%q, want True", loc.Redacted(), got)
	}
	return loc, nil
}

// emulatorHTTP trusts only the emulator's CA, dials only the emulator's
// address, and does not follow redirects.
func emulatorHTTP(emu *emulator.Server) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(emu.CAPEM())
	addr := net.JoinHostPort("127.0.0.1", fmt.Sprint(emu.Port()))
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, addr)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Consent waits until the workflow asks for admin consent, grants it in the
// emulator and sends the admin-consent signal, as an operator would.
func (e *Env) Consent(ctx context.Context, c client.Client, workflowID string, timeout time.Duration) error {
	p, err := WaitProgress(ctx, c, workflowID, timeout, func(p workflows.Progress) bool {
		return p.Step == workflows.StepAwaitingAdminConsent && p.ConsentURL != ""
	})
	if err != nil {
		return err
	}
	if err := e.GrantConsent(ctx, p.ConsentURL); err != nil {
		return err
	}
	return c.SignalWorkflow(ctx, workflowID, "", workflows.SignalAdminConsent,
		workflows.ConsentSignal{Granted: true, By: "testenv admin", Note: "granted in the emulator"})
}

// stop ends poll early: retrying cannot help.
type stop struct{ error }

func (s stop) Unwrap() error { return s.error }

func isStop(err error) bool {
	var s stop
	return errors.As(err, &s)
}
