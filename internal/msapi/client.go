package msapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Limits on what is read from a response, so a misbehaving server cannot exhaust memory.
const (
	maxBodyBytes  = 32 << 20
	maxErrorBytes = 64 << 10
)

// TokenSource yields a bearer token for one resource.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// Client calls one Microsoft REST API.
type Client struct {
	Service string // "graph" | "dataverse"
	BaseURL string // e.g. https://graph.microsoft.com/v1.0 ; https://org.crm.dynamics.com/api/data/v9.2
	HTTP    *http.Client
	Tokens  TokenSource
}

// Request describes one call relative to Client.BaseURL.
type Request struct {
	Op     string
	Method string
	Path   string      // relative to BaseURL, already escaped, starts with "/"
	Query  url.Values  // encoded with %20 for spaces (OData), $ kept literal
	Header http.Header // added to (and overriding) the defaults
	Body   any         // JSON-encoded when non-nil
	// Timeout, when set, replaces the HTTP client's own limit for this
	// call: PublishAllXml on a large org takes minutes.
	Timeout time.Duration
}

// Response is what a successful call returns besides its decoded body.
type Response struct {
	Status int
	Header http.Header
}

// Do sends req and decodes a 2xx JSON body into out (when out is non-nil and there is a body).
// Any other status becomes an *Error.
func (c *Client) Do(ctx context.Context, req Request, out any) (*Response, error) {
	u := strings.TrimRight(c.BaseURL, "/") + req.Path
	if q := EncodeQuery(req.Query); q != "" {
		u += "?" + q
	}
	return c.do(ctx, req, u, out)
}

// List follows @odata.nextLink and calls each for every element of "value".
func (c *Client) List(ctx context.Context, req Request, each func(json.RawMessage) error) error {
	base, err := url.Parse(c.BaseURL)
	if err != nil {
		return c.invalid(req.Op, fmt.Errorf("base URL: %w", err))
	}
	u := strings.TrimRight(c.BaseURL, "/") + req.Path
	if q := EncodeQuery(req.Query); q != "" {
		u += "?" + q
	}
	for u != "" {
		var page struct {
			Value    []json.RawMessage `json:"value"`
			NextLink string            `json:"@odata.nextLink"`
		}
		if _, err := c.do(ctx, req, u, &page); err != nil {
			return err
		}
		for _, v := range page.Value {
			if err := each(v); err != nil {
				return err
			}
		}
		u = page.NextLink
		if u == "" {
			break
		}
		// The bearer token goes with the next request, so it may only go back to the same origin.
		next, err := url.Parse(u)
		if err != nil || next.Scheme != base.Scheme || !strings.EqualFold(next.Host, base.Host) {
			return c.invalid(req.Op, fmt.Errorf("@odata.nextLink %q is not on %s://%s", u, base.Scheme, base.Host))
		}
	}
	return nil
}

func (c *Client) invalid(op string, err error) *Error {
	return &Error{Service: c.Service, Op: op, Kind: Invalid, Err: err}
}

func (c *Client) do(ctx context.Context, req Request, u string, out any) (*Response, error) {
	var body io.Reader
	if req.Body != nil {
		buf, err := json.Marshal(req.Body)
		if err != nil {
			return nil, c.invalid(req.Op, fmt.Errorf("encode request body: %w", err))
		}
		body = bytes.NewReader(buf)
	}
	hr, err := http.NewRequestWithContext(withCall(ctx, c.Service, req.Op), req.Method, u, body)
	if err != nil {
		return nil, c.invalid(req.Op, err)
	}
	hr.Header.Set("Accept", "application/json")
	if req.Body != nil {
		hr.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	for k, vs := range req.Header {
		hr.Header[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	if c.Tokens != nil {
		tok, err := c.Tokens.Token(ctx)
		if err != nil {
			if _, ok := AsError(err); ok {
				return nil, err
			}
			return nil, &Error{Service: c.Service, Op: req.Op, Kind: Unauthorized, Message: "could not acquire an access token", Err: err}
		}
		hr.Header.Set("Authorization", "Bearer "+tok)
	}
	hc := c.HTTP
	if hc == nil || hc.CheckRedirect == nil {
		// The request carries a bearer token: never after a redirect.
		hc = WithoutRedirects(hc)
	}
	if req.Timeout > 0 {
		// A copy shares the transport (its connections) and changes only the limit.
		long := *hc
		long.Timeout = req.Timeout
		hc = &long
	}
	resp, err := hc.Do(hr)
	if err != nil {
		return nil, c.networkError(req.Op, err)
	}
	defer resp.Body.Close()
	r := &Response{Status: resp.StatusCode, Header: resp.Header}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return r, ErrorFromResponse(c.Service, req.Op, resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		return r, c.networkError(req.Op, err)
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return r, &Error{Service: c.Service, Op: req.Op, Kind: Invalid, Status: resp.StatusCode,
				RequestID: requestIDFromHeader(resp.Header), Message: "response is not the expected JSON", Err: err}
		}
	}
	return r, nil
}

// networkError classifies a failure to get a response. Certificate problems are configuration
// errors that no retry will fix; everything else (timeouts, resets, refused) may pass.
func (c *Client) networkError(op string, err error) *Error {
	var (
		verr *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
	)
	if errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) {
		return &Error{Service: c.Service, Op: op, Kind: Invalid, Message: "TLS certificate not trusted", Err: err}
	}
	if errors.Is(err, ErrRedirect) {
		return &Error{Service: c.Service, Op: op, Kind: Invalid, Message: "check the configured Microsoft URLs (a proxy or a wrong host answers with redirects)", Err: err}
	}
	return &Error{Service: c.Service, Op: op, Kind: Transient, Err: err}
}

// ErrorFromResponse decodes a non-2xx response of Graph ({"error":{"code","message","innerError":{"request-id"}}}),
// Dataverse ({"error":{"code":"0x…","message"}}) or Entra ({"error","error_description"}) into an *Error.
// It reads (part of) resp.Body but does not close it.
func ErrorFromResponse(service, op string, resp *http.Response) *Error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	e := ErrorFromBody(service, op, resp.StatusCode, resp.Header, data)
	return e
}

// ErrorFromBody is ErrorFromResponse for a body already read.
func ErrorFromBody(service, op string, status int, h http.Header, body []byte) *Error {
	e := &Error{Service: service, Op: op, Status: status}
	var env struct {
		Error json.RawMessage `json:"error"`
		// Entra's token endpoint puts the code in "error" (a string) and the text beside it.
		Description string `json:"error_description"`
		TraceID     string `json:"trace_id"`
		ErrorCodes  []int  `json:"error_codes"`
	}
	if json.Unmarshal(body, &env) == nil && len(env.Error) > 0 {
		var nested struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError struct {
				RequestID string `json:"request-id"`
			} `json:"innerError"`
		}
		var flat string
		switch {
		case json.Unmarshal(env.Error, &nested) == nil:
			e.Code, e.Message, e.RequestID = nested.Code, nested.Message, nested.InnerError.RequestID
		case json.Unmarshal(env.Error, &flat) == nil:
			e.Code, e.RequestID = flat, env.TraceID
			e.Message = firstLine(env.Description)
		}
	}
	if e.Message == "" && e.Code == "" {
		e.Message = http.StatusText(status)
	}
	if id := requestIDFromHeader(h); id != "" {
		e.RequestID = id
	}
	e.Kind = KindFor(status, e.Code)
	if e.Kind == Throttled || e.Kind == Transient {
		e.RetryAfter = ParseRetryAfter(h.Get("Retry-After"), time.Now())
	}
	return e
}

// firstLine keeps Entra's multi-line descriptions (which end in trace and correlation IDs) short.
func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

// requestIDFromHeader finds the ID Microsoft support asks for: Graph's request-id (or the
// client-request-id it echoes), Dataverse's x-ms-service-request-id or REQ_ID, Entra's x-ms-request-id.
func requestIDFromHeader(h http.Header) string {
	for _, k := range []string{"request-id", "x-ms-service-request-id", "REQ_ID", "x-ms-request-id", "client-request-id"} {
		if v := h.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// EncodeQuery encodes OData query options the way Microsoft's documentation writes them:
// spaces as %20 (not +), and $ , ' ( ) : @ / left literal, keys sorted for stable URLs.
func EncodeQuery(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, v := range q[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(escapeQuery(k))
			b.WriteByte('=')
			b.WriteString(escapeQuery(v))
		}
	}
	return b.String()
}

func escapeQuery(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~$,'():@/!*", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// ListAll pages through a collection like List and converts each element, decoded as W, with conv.
func ListAll[W, T any](ctx context.Context, c *Client, req Request, conv func(W) T) ([]T, error) {
	out := []T{}
	err := c.List(ctx, req, func(raw json.RawMessage) error {
		var w W
		if err := json.Unmarshal(raw, &w); err != nil {
			return &Error{Service: c.Service, Op: req.Op, Kind: Invalid, Message: "unexpected element in value", Err: err}
		}
		out = append(out, conv(w))
		return nil
	})
	return out, err
}
