package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/internal/cli"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/msapi"
)

// sessionOrgHost is the default seed's org whose provisioner nobody consented to.
const sessionOrgHost = "northwind.crm.localhost"

// runSessionDemo onboards Northwind in the customer-admin session mode: the
// one link, opened by the seeded admin in one browser session.
func runSessionDemo(ctx context.Context, x cli.App, w io.Writer, st *Stack) error {
	var tenant, admin string
	for _, og := range st.Seed.Orgs {
		if strings.EqualFold(og.Host, sessionOrgHost) {
			tenant = og.TenantID
		}
	}
	for _, t := range st.Seed.Tenants {
		if strings.EqualFold(t.ID, tenant) && len(t.Admins) > 0 {
			admin = t.Admins[0].UPN
		}
	}
	if tenant == "" || admin == "" {
		return errors.New("demo --admin-session: the emulator seed has no org " + sessionOrgHost + " with a tenant admin")
	}
	return x.RunSessionOnboarding(ctx, w, tenant, st.Emulator.OrgURL(sessionOrgHost),
		func(ctx context.Context, _ client.Client, _, link string) error {
			b, err := NewAdminBrowser(st.Emulator.CAFile())
			if err != nil {
				return err
			}
			return b.Session(ctx, w, link, admin)
		})
}

// AdminBrowser is the customer's admin on the emulator's pages: one browser
// session (cookies kept, redirects followed: it carries no credential).
type AdminBrowser struct {
	hc *http.Client
	// Codes are the authorization codes the browser carried back to the
	// session callback (tests check that none is stored anywhere).
	Codes []string
}

// NewAdminBrowser trusts the emulator's CA.
func NewAdminBrowser(caFile string) (*AdminBrowser, error) {
	hc, err := msapi.NewHTTPClient(msapi.HTTPOptions{CAFile: caFile, DialOverrides: map[string]string{"*.localhost": "127.0.0.1"}})
	if err != nil {
		return nil, err
	}
	jar, _ := cookiejar.New(nil)
	b := &AdminBrowser{hc: hc}
	hc.Jar = jar
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if c := req.URL.Query().Get("code"); c != "" {
			b.Codes = append(b.Codes, c)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return b, nil
}

// Session opens the link, consents (Accept on the emulator's consent page), signs in as login on the sign-in page (login "" cancels it), then
// waits on the session page until it forwards to the Marketo app's
// consent, which it accepts.
func (b *AdminBrowser) Session(ctx context.Context, w io.Writer, link, login string) error {
	fmt.Fprintf(w, "  → the customer's admin opens the one link: consent to the provisioner (emulator consent page, Accept)\n")
	res, body, err := b.get(ctx, link)
	if err != nil {
		return err
	}
	if res, body, err = b.accept(ctx, res, body); err != nil {
		return err
	}
	if !strings.HasSuffix(res.Request.URL.Path, "/oauth2/v2.0/authorize") {
		return fmt.Errorf("demo: the consent did not lead to the sign-in (ended at %s, HTTP %d): %.300s", redirectTarget(res.Request.URL), res.StatusCode, body)
	}
	action := "signin"
	if login == "" {
		action = "cancel"
		fmt.Fprintf(w, "  → cancels the sign-in (emulator sign-in page)\n")
	} else {
		fmt.Fprintf(w, "  → signs in as %s (emulator sign-in page)\n", login)
	}
	res, body, err = b.post(ctx, res.Request.URL.String(), url.Values{"login": {login}, "action": {action}})
	if err != nil {
		return err
	}
	if action == "cancel" {
		return fmt.Errorf("sign-in cancelled; the session page says: %.300s", body)
	}
	if res.StatusCode != http.StatusOK || !strings.Contains(body, "Signed in") {
		return fmt.Errorf("demo: the sign-in ended at %s with HTTP %d: %.300s", redirectTarget(res.Request.URL), res.StatusCode, body)
	}
	next := *res.Request.URL
	next.Path += "/next"
	fmt.Fprintf(w, "  → the session page waits while mktos2s adds itself and registers the Marketo app\n")
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); {
		res, body, err = b.get(ctx, next.String())
		if err != nil {
			return err
		}
		if strings.HasSuffix(res.Request.URL.Path, "/adminconsent") && res.StatusCode == http.StatusOK {
			// Forwarded to the Marketo app's consent page: Accept.
			if res, body, err = b.accept(ctx, res, body); err != nil {
				return err
			}
		}
		if strings.HasSuffix(res.Request.URL.Path, "/consent/callback") {
			fmt.Fprintf(w, "  → forwarded to the Marketo app's consent, accepted; Entra redirected to %s\n", redirectTarget(res.Request.URL))
			return nil
		}
		if strings.Contains(body, "The onboarding stopped") {
			return fmt.Errorf("demo: %.400s", body)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return errors.New("demo: the session page was not forwarded to the Marketo app's consent within 5 minutes")
}

// accept clicks Accept on the admin-consent page res showed.
func (b *AdminBrowser) accept(ctx context.Context, res *http.Response, body string) (*http.Response, string, error) {
	if res.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("demo: the consent page answered HTTP %d at %s: %.300s", res.StatusCode, redirectTarget(res.Request.URL), body)
	}
	action, form, err := emulator.ConsentForm(res.Request.URL, []byte(body), true)
	if err != nil {
		return nil, "", fmt.Errorf("demo: %w", err)
	}
	return b.post(ctx, action, form)
}

func (b *AdminBrowser) get(ctx context.Context, u string) (*http.Response, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", err
	}
	return b.do(req)
}

func (b *AdminBrowser) post(ctx context.Context, u string, form url.Values) (*http.Response, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func (b *AdminBrowser) do(req *http.Request) (*http.Response, string, error) {
	res, err := b.hc.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("demo browser: %w", err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res, string(data), nil
}
