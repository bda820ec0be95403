package msapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// maxIdleConnsPerHost is how many idle HTTP/1.1 connections a host keeps for reuse.
const maxIdleConnsPerHost = 32

// HTTPOptions configures NewHTTPClient.
type HTTPOptions struct {
	CAFile        string            // extra PEM roots (the emulator's CA); empty = system roots
	DialOverrides map[string]string // host pattern ("*.localhost" or exact host) -> IP to dial instead
	Timeout       time.Duration     // per request, default 30s
}

// NewHTTPClient builds the client MSAL, Graph and Dataverse share. Dial overrides send matching
// hosts to a fixed IP (keeping the port and the TLS server name), so emulator hosts such as
// contoso.crm.localhost are never looked up in DNS.
func NewHTTPClient(o HTTPOptions) (*http.Client, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", o.CAFile)
		}
	}
	for pattern, ip := range o.DialOverrides {
		if net.ParseIP(ip) == nil {
			return nil, fmt.Errorf("dial override %q: %q is not an IP address", pattern, ip)
		}
	}
	overrides := make(map[string]string, len(o.DialOverrides))
	for k, v := range o.DialOverrides {
		overrides[strings.ToLower(k)] = v
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	// Entra, Graph and Dataverse (and the emulator) speak HTTP/2: one connection per host
	// carries every concurrent request. Over HTTP/1.1 (a proxy or server without h2) the
	// default of 2 idle connections per host made a busy worker close and re-handshake most of
	// its connections to the token endpoint, which all tenants share.
	tr.MaxIdleConnsPerHost = maxIdleConnsPerHost
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if ip, ok := overrideFor(overrides, host); ok {
			addr = net.JoinHostPort(ip, port)
		}
		return dialer.DialContext(ctx, network, addr)
	}
	// An overridden host must be dialled directly: a proxy would resolve it itself.
	tr.Proxy = func(r *http.Request) (*url.URL, error) {
		if _, ok := overrideFor(overrides, r.URL.Hostname()); ok {
			return nil, nil
		}
		return http.ProxyFromEnvironment(r)
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	return &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: RefuseRedirect}, nil
}

// ErrRedirect is what a request gets when the server answers with a redirect.
var ErrRedirect = errors.New("the server answered with a redirect, which mktos2s never follows")

// RefuseRedirect is an http.Client CheckRedirect that follows no redirect.
// Every request of this client carries a credential (a client secret or
// assertion in the token form, a bearer token to Graph and Dataverse), and
// net/http re-sends a 307/308's body and, to a host it considers related, its
// Authorization header: a redirect could hand either to another host, or over
// plain http. Entra, Graph and Dataverse answer the calls mktos2s makes
// without redirects, so one is a fault to report, not a path to take.
func RefuseRedirect(req *http.Request, _ []*http.Request) error {
	return fmt.Errorf("%w (to %s://%s%s)", ErrRedirect, req.URL.Scheme, req.URL.Host, req.URL.Path)
}

// WithoutRedirects returns a copy of hc (nil: http.DefaultClient) that follows
// no redirect, for handing a client the caller built to code that sends
// credentials with it.
func WithoutRedirects(hc *http.Client) *http.Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	c := *hc
	c.CheckRedirect = RefuseRedirect
	return &c
}

// overrideFor matches host against exact names first, then "*.suffix" patterns (any depth).
func overrideFor(overrides map[string]string, host string) (string, bool) {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if ip, ok := overrides[host]; ok {
		return ip, true
	}
	best, bestLen := "", -1
	for pattern, ip := range overrides {
		suffix, ok := strings.CutPrefix(pattern, "*")
		if !ok || !strings.HasPrefix(suffix, ".") {
			continue
		}
		if strings.HasSuffix(host, suffix) && len(host) > len(suffix) && len(suffix) > bestLen {
			best, bestLen = ip, len(suffix)
		}
	}
	return best, bestLen >= 0
}
