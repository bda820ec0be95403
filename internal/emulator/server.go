package emulator

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options configure Start.
type Options struct {
	Addr    string       // default "127.0.0.1:8443"; tests use "127.0.0.1:0"
	DataDir string       // where ca.pem goes (the CA's key stays in memory); created if missing
	Seed    *Seed        // nil = DefaultSeed()
	Logger  *slog.Logger // nil = discard
	Out     io.Writer    // where Run prints its banner; nil = os.Stdout

	// SecretIssued, when set, is told every client secret the emulator
	// issues, before the response leaves. The emulator itself keeps only a
	// hash; a leak scan needs the values, including those whose response a
	// crashed caller never saw. Called with the emulator's lock held: it
	// must not call back into the Server.
	SecretIssued func(keyID, secret string)
}

// Server is a running emulator.
type Server struct {
	log     *slog.Logger
	ln      net.Listener
	srv     *http.Server
	pki     *pki
	caFile  string
	port    int
	signKey *rsa.PrivateKey
	kid     string
	seed    *Seed
	formKey []byte // signs the admin-consent page's anti-forgery value

	mu       sync.Mutex // guards everything below
	tenants  map[string]*tenant
	orgs     map[string]*org
	faults   Faults
	failNext map[string]*failRule
	loseNext map[string]*lossRule
	lost     map[string]map[string]int // op -> mode -> answers lost
	rng      *mrand.Rand
	now      func() time.Time

	secretIssued func(keyID, secret string)
	vaults       map[string]map[string][]vaultVersion // Key Vault (keyvault.go): host → name → versions
}

// Start listens on o.Addr and serves until Close or ctx is done.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:8443"
	}
	if o.DataDir == "" {
		return nil, errors.New("emulator: DataDir is required")
	}
	if o.Seed == nil {
		o.Seed = DefaultSeed()
	}
	if err := o.Seed.validate(); err != nil {
		return nil, fmt.Errorf("emulator: seed: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, _, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("emulator: addr: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("emulator: addr %q is not a loopback address", o.Addr)
	}
	var orgHosts []string
	for _, og := range o.Seed.Orgs {
		orgHosts = append(orgHosts, strings.ToLower(og.Host))
	}
	p, err := newPKI(o.DataDir, orgHosts)
	if err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("emulator: signing key: %w", err)
	}
	var rs [32]byte
	_, _ = rand.Read(rs[:])
	formKey := make([]byte, 32)
	_, _ = rand.Read(formKey)
	s := &Server{
		log: log, pki: p, caFile: filepath.Join(o.DataDir, "ca.pem"), signKey: key, kid: newGUID()[:8], formKey: formKey,
		seed: o.Seed, failNext: map[string]*failRule{}, rng: mrand.New(mrand.NewChaCha8(rs)), now: time.Now,
		secretIssued: o.SecretIssued,
	}
	if err := s.reset(); err != nil {
		return nil, fmt.Errorf("emulator: %w", err)
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("emulator: listen: %w", err)
	}
	s.ln = ln
	s.port = ln.Addr().(*net.TCPAddr).Port
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := s.srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("emulator stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		_ = s.Close()
	}()
	log.Info("emulator listening", "url", s.URL(), "ca", s.caFile)
	return s, nil
}

// reset rebuilds the world from the seed.
func (s *Server) reset() error {
	tenants, orgs, err := buildWorld(s.seed, s.now())
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tenants, s.orgs = tenants, orgs
	s.faults = s.seed.Faults.clone()
	s.failNext = map[string]*failRule{}
	s.loseNext = map[string]*lossRule{}
	s.lost = map[string]map[string]int{}
	return nil
}

// URL is the emulator's origin, e.g. https://127.0.0.1:8443.
func (s *Server) URL() string { return "https://127.0.0.1:" + strconv.Itoa(s.port) }

// Port is the TCP port it listens on.
func (s *Server) Port() int { return s.port }

// CAFile is the path of the CA certificate PEM.
func (s *Server) CAFile() string { return s.caFile }

// CAPEM is the CA certificate PEM.
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.pki.caPEM...) }

// OrgURL is the Dataverse org URL of a seeded org host.
func (s *Server) OrgURL(host string) string {
	return "https://" + strings.ToLower(host) + ":" + strconv.Itoa(s.port)
}

// Close stops the listener.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// Run starts the emulator, prints where it is and how to configure mktos2s for it, and blocks
// until ctx is done.
func Run(ctx context.Context, o Options) error {
	out := o.Out
	if out == nil {
		out = os.Stdout
	}
	s, err := Start(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "mktos2s emulator (Entra ID, Microsoft Graph, Dataverse) listening on %s\n", s.URL())
	fmt.Fprintf(out, "CA certificate: %s\n", s.CAFile())
	fmt.Fprintf(out, "authority host: %s\ngraph base URL: %s/v1.0\n", s.URL(), s.URL())
	for _, t := range s.seed.Tenants {
		fmt.Fprintf(out, "tenant %s (%s): provisioner client ID %s (secret: from the seed file)\n",
			t.ID, t.DisplayName, t.Provisioner.ClientID)
		for _, og := range s.seed.Orgs {
			if strings.EqualFold(og.TenantID, t.ID) {
				fmt.Fprintf(out, "  org URL: %s\n", s.OrgURL(og.Host))
			}
		}
	}
	fmt.Fprintf(out, "state: %s/_emulator/state\n", s.URL())
	<-ctx.Done()
	return s.Close()
}

// call is the per-request context shared by the handlers.
type call struct {
	op     string
	reqID  string
	status int
	claims *accessClaims
	tenant *tenant
	org    *org
	user   *systemUser
}

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

type service int

const (
	svcEntra service = iota
	svcGraph
	svcDataverse
	svcAdmin
	svcPowerPlatform // powerplatform.go
)

// route is what a service dispatcher resolves a request to.
type route struct {
	op     string
	handle func(w http.ResponseWriter, r *http.Request, c *call)
	auth   bool // needs a bearer token
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	c := &call{reqID: newGUID()}
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	s.mu.Lock()
	o := s.orgs[host]
	s.mu.Unlock()
	var svc service
	switch {
	case o != nil:
		svc = svcDataverse
		c.org = o
	case strings.HasPrefix(r.URL.Path, "/v1.0/") || r.URL.Path == "/v1.0":
		svc = svcGraph
	case strings.HasPrefix(r.URL.Path, "/_emulator/"):
		svc = svcAdmin
	case strings.HasPrefix(r.URL.Path, bapPrefix):
		svc = svcPowerPlatform
	default:
		svc = svcEntra
	}
	defer func() {
		// Never log query strings: admin-consent state and filters are harmless, but a token
		// request body or header never reaches here, and keeping only the path is the safe rule.
		s.log.Info("request", "method", r.Method, "host", host, "path", r.URL.Path, "status", rec.status,
			"op", c.op, "request-id", c.reqID, "ms", time.Since(start).Milliseconds())
	}()
	if o == nil && isVaultHost(host) {
		s.serveKeyVault(rec, r, c, host)
		return
	}
	switch svc {
	case svcDataverse:
		rec.Header().Set("OData-Version", "4.0")
		rec.Header().Set("x-ms-service-request-id", c.reqID)
		rec.Header().Set("REQ_ID", c.reqID)
	case svcGraph:
		rec.Header().Set("request-id", c.reqID)
		crid := r.Header.Get("client-request-id")
		if crid == "" {
			crid = c.reqID
		}
		rec.Header().Set("client-request-id", crid)
	case svcEntra:
		rec.Header().Set("x-ms-request-id", c.reqID)
	}
	var rt route
	var status int
	var code, msg string
	switch svc {
	case svcAdmin:
		if !remoteIsLoopback(r) {
			http.Error(rec, "admin endpoints are loopback only", http.StatusForbidden)
			return
		}
		s.admin(rec, r, c)
		return
	case svcEntra:
		rt, status, code, msg = s.entraRoute(r)
	case svcGraph:
		rt, status, code, msg = s.graphRoute(r)
	case svcDataverse:
		s.mu.Lock()
		s.promoteAppUsers(o)
		s.mu.Unlock()
		rt, status, code, msg = s.dataverseRoute(r)
	case svcPowerPlatform:
		rt, status, code, msg = s.bapRoute(r)
	}
	if rt.handle == nil {
		s.writeError(rec, svc, c, status, code, msg)
		return
	}
	c.op = rt.op
	if !s.injectFaults(rec, r, svc, c) {
		return
	}
	if rt.auth {
		var ok bool
		switch svc {
		case svcGraph:
			ok = s.graphAuth(rec, r, c)
		case svcDataverse:
			ok = s.dataverseAuth(rec, r, c)
		}
		if !ok {
			return
		}
		if fr, ok := s.takeFailure(tenantRuleKey(c.tenantID(), c.op)); ok {
			s.writeError(rec, svc, c, fr.status, fr.code, "Injected failure for "+c.op+".")
			return
		}
		if r.Method != http.MethodGet {
			if mode, rule, ok := s.pendingLoss(c); ok {
				s.serveLosing(rec, r, svc, c, rt, mode, rule)
				return
			}
		}
	}
	rt.handle(rec, r, c)
}

func remoteIsLoopback(r *http.Request) bool {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// injectFaults applies latency, FailNext and random faults; false = the response was written.
func (s *Server) injectFaults(w http.ResponseWriter, r *http.Request, svc service, c *call) bool {
	rf, throttle, retryAfter, fail := s.roll(c.op)
	if rf.LatencyMs > 0 {
		select {
		case <-time.After(time.Duration(rf.LatencyMs) * time.Millisecond):
		case <-r.Context().Done():
			return false
		}
	}
	if fr, ok := s.takeFailure(c.op); ok {
		if fr.status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		s.writeError(w, svc, c, fr.status, fr.code, "Injected failure for "+c.op+".")
		return false
	}
	if throttle {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
		switch svc {
		case svcDataverse:
			te := s.dataverseThrottle(rf.ThrottleCode)
			s.writeError(w, svc, c, http.StatusTooManyRequests, te.code, te.message)
		case svcEntra:
			s.writeError(w, svc, c, http.StatusTooManyRequests, "temporarily_unavailable",
				"AADSTS90055: The request is throttled temporarily; retry after the Retry-After interval.")
		default:
			s.writeError(w, svc, c, http.StatusTooManyRequests, "TooManyRequests",
				"Too many requests, retry after the interval in the Retry-After header.")
		}
		return false
	}
	if fail {
		st := rf.ServerErrorStatus
		if st == 0 {
			st = http.StatusServiceUnavailable
		}
		switch svc {
		case svcDataverse:
			s.writeError(w, svc, c, st, "0x80040216", "An unexpected error occurred.")
		case svcEntra:
			s.writeError(w, svc, c, st, "temporarily_unavailable", "AADSTS90033: A transient error has occurred. Please try again.")
		default:
			s.writeError(w, svc, c, st, "serviceNotAvailable", "The service is temporarily unavailable. Please retry later.")
		}
		return false
	}
	return true
}

// writeError writes an error in the service's own shape.
func (s *Server) writeError(w http.ResponseWriter, svc service, c *call, status int, code, msg string) {
	c.status = status
	switch svc {
	case svcEntra:
		writeEntraError(w, status, code, msg, c.reqID)
	case svcDataverse, svcPowerPlatform:
		writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
	default:
		writeJSON(w, status, map[string]any{"error": map[string]any{
			"code": code, "message": msg,
			"innerError": map[string]any{
				"date": time.Now().UTC().Format("2006-01-02T15:04:05"), "request-id": c.reqID,
				"client-request-id": w.Header().Get("client-request-id"),
			},
		}})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	if v != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

// admin serves /_emulator/*: state, faults, fail, reset. No token: loopback only.
func (s *Server) admin(w http.ResponseWriter, r *http.Request, c *call) {
	c.op = "admin" + strings.ReplaceAll(strings.TrimPrefix(r.URL.Path, "/_emulator"), "/", ".")
	switch {
	case r.URL.Path == "/_emulator/state" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.State())
	case r.URL.Path == "/_emulator/faults" && r.Method == http.MethodGet:
		s.mu.Lock()
		f := s.faults.clone()
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, f)
	case r.URL.Path == "/_emulator/faults" && r.Method == http.MethodPost:
		var f Faults
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			http.Error(w, "bad faults JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := f.validate(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.SetFaults(f)
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == "/_emulator/fail" && r.Method == http.MethodPost:
		var in struct {
			Op     string `json:"op"`
			Tenant string `json:"tenant"` // optional: only this tenant's requests
			Times  int    `json:"times"`
			Status int    `json:"status"`
			Code   string `json:"code"`
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil || in.Op == "" || (in.Times != 0 && (in.Status < 400 || in.Status > 599)) {
			http.Error(w, `want {"op":"graph.addPassword","times":1,"status":503,"code":"..."}`, http.StatusBadRequest)
			return
		}
		if in.Tenant != "" {
			s.FailNextTenant(in.Tenant, in.Op, in.Times, in.Status, in.Code)
		} else {
			s.FailNext(in.Op, in.Times, in.Status, in.Code)
		}
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == "/_emulator/lose" && r.Method == http.MethodPost:
		var in struct {
			Op     string `json:"op"`
			Tenant string `json:"tenant"`
			Times  int    `json:"times"`
			Mode   string `json:"mode"`
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil || in.Op == "" || in.Tenant == "" || !validLoseMode(in.Mode) {
			http.Error(w, `want {"op":"graph.addPassword","tenant":"<tenant id>","times":1,"mode":"5xx|reset|stall|"}`, http.StatusBadRequest)
			return
		}
		s.LoseNextTenant(in.Tenant, in.Op, in.Times, in.Mode)
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == "/_emulator/lost" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.LostAnswers())
	case r.URL.Path == "/_emulator/reset" && r.Method == http.MethodPost:
		if err := s.reset(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "unknown admin endpoint; have GET /_emulator/state, GET|POST /_emulator/faults, POST /_emulator/fail, POST /_emulator/lose, GET /_emulator/lost, POST /_emulator/reset", http.StatusNotFound)
	}
}
