package codec

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"go.temporal.io/sdk/converter"
)

// HTTPOptions configure the codec endpoint the Temporal UI and CLI call.
type HTTPOptions struct {
	// Token is the bearer token every POST must carry. Required: the endpoint
	// decrypts client secrets.
	Token string
	// CORSOrigin is the one browser origin (the Temporal UI, e.g.
	// http://localhost:8233) allowed to call the endpoint; for a loopback
	// origin, the other loopback names with the same port are accepted too.
	// Empty allows no browser origin; the CLI, which sends no Origin, still works.
	CORSOrigin string
	// MaxBodyBytes bounds a request body; 0 means 16 MiB.
	MaxBodyBytes int64
}

// The Temporal UI sends these on /decode and /encode; a preflight asking for
// anything else is refused so a browser does not relay unexpected headers.
var allowedHeaders = []string{"Authorization", "Content-Type", "X-Namespace"}

// PathTokenPrefix introduces a token carried in the path instead of the
// Authorization header: POST /auth/<token>/decode. The Temporal UI sends an
// Authorization header only when it has its own OIDC login (PassAccessToken),
// so a dev-server UI can reach the endpoint only with the token in the URL,
// e.g. --ui-codec-endpoint http://127.0.0.1:8081/auth/<token>.
const PathTokenPrefix = "/auth/"

// NewHTTPHandler serves the Temporal codec protocol (POST …/encode, …/decode)
// for c, behind bearer-token authentication (header, or PathTokenPrefix in the
// path) and a single-origin CORS policy.
func NewHTTPHandler(c converter.PayloadCodec, o HTTPOptions) (http.Handler, error) {
	if o.Token == "" {
		return nil, errors.New("codec endpoint: a bearer token is required (codecServer.token)")
	}
	origin := ""
	if o.CORSOrigin != "" {
		var err error
		if origin, err = NormalizeOrigin(o.CORSOrigin); err != nil {
			return nil, fmt.Errorf("codec endpoint: %w", err)
		}
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 16 << 20
	}
	// Hash once so comparisons take the same time whatever the presented length.
	want := sha256.Sum256([]byte(o.Token))
	return &httpHandler{
		codec:   converter.NewPayloadCodecHTTPHandler(c),
		origin:  origin,
		token:   want,
		maxBody: o.MaxBodyBytes,
	}, nil
}

type httpHandler struct {
	codec   http.Handler
	origin  string
	token   [sha256.Size]byte
	maxBody int64
}

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if reqOrigin := r.Header.Get("Origin"); reqOrigin != "" {
		if h.origin == "" || !sameOrigin(reqOrigin, h.origin) {
			http.Error(w, "origin not allowed", http.StatusForbidden)
			return
		}
		// Echo the browser's spelling: it compares the header byte for byte.
		w.Header().Set("Access-Control-Allow-Origin", reqOrigin)
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header().Add("Vary", "Origin")
		if r.Method == http.MethodOptions {
			h.preflight(w, r)
			return
		}
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mktos2s-codec"`)
		http.Error(w, "missing or invalid bearer token", http.StatusUnauthorized)
		return
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, PathTokenPrefix); ok {
		// Drop the token so nothing downstream sees or echoes it.
		_, tail, _ := strings.Cut(rest, "/")
		r.URL.Path = "/" + tail
		r.URL.RawPath = ""
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.maxBody)
	h.codec.ServeHTTP(w, r)
}

func (h *httpHandler) preflight(w http.ResponseWriter, r *http.Request) {
	if m := r.Header.Get("Access-Control-Request-Method"); m != "" && m != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusForbidden)
		return
	}
	for _, name := range strings.Split(r.Header.Get("Access-Control-Request-Headers"), ",") {
		name = strings.TrimSpace(name)
		if name != "" && !containsFold(allowedHeaders, name) {
			http.Error(w, "header not allowed: "+name, http.StatusForbidden)
			return
		}
	}
	w.Header().Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	w.Header().Set("Access-Control-Allow-Headers", strings.Join(allowedHeaders, ", "))
	w.Header().Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

func (h *httpHandler) authorized(r *http.Request) bool {
	var token string
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, t, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return false
		}
		token = strings.TrimSpace(t)
	} else if rest, ok := strings.CutPrefix(r.URL.Path, PathTokenPrefix); ok {
		token, _, _ = strings.Cut(rest, "/")
	}
	if token == "" {
		return false
	}
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], h.token[:]) == 1
}

// NormalizeOrigin reduces a configured origin to scheme://host[:port] so that
// a trailing slash in the config does not silently block the UI.
func NormalizeOrigin(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("CORS origin %q must look like http://host:port", s)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("CORS origin %q must not have a path, query or user info", s)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// sameOrigin compares origins, treating localhost, 127.0.0.1 and [::1] as one
// host: the UI is reached under whichever loopback name was typed, and all of
// them are the same machine and port.
func sameOrigin(got, want string) bool {
	n, err := NormalizeOrigin(got)
	if err != nil {
		return false
	}
	if n == want {
		return true
	}
	g, _ := url.Parse(n)
	w, _ := url.Parse(want)
	return g.Scheme == w.Scheme && g.Port() == w.Port() && isLoopback(g.Hostname()) && isLoopback(w.Hostname())
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
