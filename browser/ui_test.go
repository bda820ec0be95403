//go:build browser

package browser_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/mktos2s/mktos2s/internal/codec"
	"github.com/mktos2s/mktos2s/internal/config"
	"github.com/mktos2s/mktos2s/internal/custody"
	"github.com/mktos2s/mktos2s/internal/devstack"
	"github.com/mktos2s/mktos2s/internal/testenv"
	"github.com/mktos2s/mktos2s/internal/workerapp"
	"github.com/mktos2s/mktos2s/workflows"
)

const (
	contosoTenant  = "11111111-1111-1111-1111-111111111111"
	fabrikamTenant = "22222222-2222-2222-2222-222222222222"
)

// The codec endpoint the UI calls behaves as one of these.
const (
	codecProduct = iota // the product's endpoint: the codec key only
	codecDown           // unreachable: every connection is closed unanswered
	codecLeaky          // a misconfigured endpoint that also holds the custody key
)

// chromiumFlags are exactly the flags the browser is started with (plus a
// fresh --user-data-dir and the DevTools port chromedp needs).
var chromiumFlags = []string{
	"headless", "no-sandbox", "disable-gpu", "disable-quic", "no-first-run",
	"disable-background-networking", "disable-component-update", "disable-sync",
}

// TestOperatorViewInTheTemporalUI opens the dev stack's Temporal UI in
// headless Chromium, with the codec endpoint wired in as `devstack dev`
// wires it, and checks what an operator sees: (a) a waiting onboarding shows
// its step and consent link, (b) a completed one's input and result are
// decoded, (c) the client secret is in no page and no response the browser
// received, (d) with the codec endpoint unreachable only encrypted payloads
// show. A codec endpoint given the custody key makes (c) fail: the last
// subtest proves the check can fail.
func TestOperatorViewInTheTemporalUI(t *testing.T) {
	chromium := chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	var mode atomic.Int32
	if os.Getenv("MKTOS2S_BROWSER_LEAKY_CODEC") == "1" {
		// Demonstration: give the codec endpoint the custody key; the checks must fail.
		mode.Store(codecLeaky)
	}
	normal := mode.Load()
	dir := t.TempDir()
	base, err := config.Load(config.Options{File: repoFile(t, "config/mktos2s.emulator.yaml")})
	require.NoError(t, err)
	base.Log.Level = "warn"
	st, err := devstack.StartStack(ctx, base, devstack.StackOptions{
		UI: true, EmulatorAddr: "127.0.0.1:0", DataDir: filepath.Join(dir, "emulator"), CodecListen: "127.0.0.1:0",
		WrapCodec: func(cfg config.Config, h http.Handler) http.Handler { return switchable(t, cfg, h, &mode) },
	})
	require.NoError(t, err)
	defer st.Stop()
	require.NotEmpty(t, st.Temporal.UIURL)

	c, err := workerapp.Dial(ctx, st.Config)
	require.NoError(t, err)
	defer c.Close()
	env := &testenv.Env{Dev: st.Temporal, Emu: st.Emulator, Seed: st.Seed}

	// A completed onboarding (Contoso) and one waiting for consent (Fabrikam).
	completedID, res := onboard(ctx, t, c, env, contosoTenant, st.Emulator.OrgURL("contoso.crm.localhost"), true)
	waitingID, _ := onboard(ctx, t, c, env, fabrikamTenant, st.Emulator.OrgURL("fabrikam.crm.localhost"), false)
	ring, err := workerapp.NewCustody(st.Config.Custody)
	require.NoError(t, err)
	secret, err := ring.Open(res.ClientSecret)
	require.NoError(t, err, "the worker sealed the secret with the stack's custody key")
	require.GreaterOrEqual(t, len(secret), 16)
	waiting, err := testenv.WaitProgress(ctx, c, waitingID, time.Minute, func(p workflows.Progress) bool { return p.ConsentURL != "" })
	require.NoError(t, err)

	b := newBrowser(t, ctx, chromium)
	link := func(id string) string {
		return st.Temporal.UIURL + "/namespaces/" + url.PathEscape(st.Config.Temporal.Namespace) + "/workflows/" + url.PathEscape(id)
	}

	t.Run("a waiting onboarding shows its step and the consent link", func(t *testing.T) {
		// The UI shows the workflow's current details under "User Metadata".
		text := b.open(t, link(waitingID), "waiting", func(text string) bool {
			return strings.Contains(text, workflows.StepAwaitingAdminConsent) && strings.Contains(text, "adminconsent")
		}, "User Metadata")
		assert.Contains(t, text, workflows.StepAwaitingAdminConsent)
		consentPrefix, _, _ := strings.Cut(waiting.ConsentURL, "&")
		assert.Contains(t, text, consentPrefix, "the consent link, as text an operator can copy")
	})

	t.Run("a completed onboarding's input and result are decoded", func(t *testing.T) {
		// The page title is the workflow ID, which holds the tenant ID too:
		// look for it as the decoded input's field.
		decodedTenant := `"tenantId": "` + contosoTenant + `"`
		text := b.open(t, link(completedID), "completed", func(text string) bool {
			return strings.Contains(text, decodedTenant) && strings.Contains(text, "Marketo Sync User")
		}, "")
		assert.Contains(t, text, decodedTenant, "the input's tenant ID, decoded")
		assert.Contains(t, text, "Marketo Sync User", "the result's validation and the input's role")
		assert.Contains(t, text, `"sealed"`, "the secret shows as a sealed value")
	})

	t.Run("the secret appears in no page and no response", func(t *testing.T) {
		assert.Empty(t, b.leaks(secret), "where the secret was found")
		assert.Positive(t, b.decodes(), "the page called the codec endpoint")
		pages, responses := b.counts()
		t.Logf("searched %d page texts and HTML documents and %d responses (%d from the codec endpoint's /decode) for the secret", pages, responses, b.decodes())
	})

	t.Run("with the codec endpoint unreachable only encrypted payloads show", func(t *testing.T) {
		mode.Store(codecDown)
		defer mode.Store(normal)
		encrypted := base64.StdEncoding.EncodeToString([]byte(codec.EncodingEncrypted)) // metadata values are base64 in the UI's JSON
		text := b.open(t, link(completedID), "codec-down", func(text string) bool {
			return strings.Contains(text, encrypted)
		}, "")
		assert.Contains(t, text, encrypted, "the payloads' encoding metadata, undecoded")
		assert.NotContains(t, text, `"tenantId"`, "no decoded input")
		assert.NotContains(t, text, "Marketo Sync User", "no decoded result")
	})

	t.Run("a codec endpoint holding the custody key fails the check", func(t *testing.T) {
		mode.Store(codecLeaky)
		defer mode.Store(normal)
		leaky := newBrowser(t, ctx, chromium)
		leaky.open(t, link(completedID), "leaky-codec", func(text string) bool { return strings.Contains(text, secret) }, "")
		assert.NotEmpty(t, leaky.leaks(secret), "the check sees the secret once the codec can open it")
	})
}

// onboard starts an onboarding and, when complete is set, consents and
// waits for its result.
func onboard(ctx context.Context, t *testing.T, c client.Client, env *testenv.Env, tenantID, orgURL string, complete bool) (string, workflows.OnboardingResult) {
	t.Helper()
	in := workflows.OnboardingInput{TenantID: tenantID, OrgURL: orgURL}.WithDefaults()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: in.WorkflowID(), TaskQueue: workflows.TaskQueue}, workflows.WorkflowType, in)
	require.NoError(t, err)
	var res workflows.OnboardingResult
	if !complete {
		return in.WorkflowID(), res
	}
	require.NoError(t, env.Consent(ctx, c, in.WorkflowID(), time.Minute))
	require.NoError(t, run.Get(ctx, &res))
	return in.WorkflowID(), res
}

// switchable serves the codec endpoint as mode says.
func switchable(t *testing.T, cfg config.Config, product http.Handler, mode *atomic.Int32) http.Handler {
	leaky, err := leakyHandler(cfg)
	require.NoError(t, err)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case codecDown:
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					_ = conn.Close()
					return
				}
			}
			http.Error(w, "down", http.StatusBadGateway)
		case codecLeaky:
			leaky.ServeHTTP(w, r)
		default:
			product.ServeHTTP(w, r)
		}
	})
}

// leakyHandler is a codec endpoint that was wrongly given the custody key:
// it decodes payloads and opens every sealed secret in them.
func leakyHandler(cfg config.Config) (http.Handler, error) {
	cdc, err := workerapp.NewCodec(cfg.Codec)
	if err != nil {
		return nil, err
	}
	ring, err := workerapp.NewCustody(cfg.Custody)
	if err != nil {
		return nil, err
	}
	return codec.NewHTTPHandler(openingCodec{cdc, ring}, codec.HTTPOptions{Token: cfg.CodecServer.Token, CORSOrigin: cfg.CodecServer.CORSOrigin})
}

type openingCodec struct {
	*codec.Codec
	ring *custody.Keyring
}

func (o openingCodec) Decode(ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out, err := o.Codec.Decode(ps)
	if err != nil {
		return nil, err
	}
	for _, p := range out {
		var v any
		if string(p.GetMetadata()[converter.MetadataEncoding]) != converter.MetadataEncodingJSON || json.Unmarshal(p.GetData(), &v) != nil {
			continue
		}
		if b, err := json.Marshal(o.open(v)); err == nil {
			p.Data = b
		}
	}
	return out, nil
}

func (o openingCodec) open(v any) any {
	switch x := v.(type) {
	case []any:
		for i := range x {
			x[i] = o.open(x[i])
		}
	case map[string]any:
		sealed, ok1 := x["sealed"].(string)
		keyID, ok2 := x["keyId"].(string)
		if ok1 && ok2 && len(x) == 2 {
			if plain, err := o.ring.Open(custody.Sealed{Ciphertext: sealed, KeyID: keyID}); err == nil {
				return plain
			}
		}
		for k := range x {
			x[k] = o.open(x[k])
		}
	}
	return v
}

// browser is one headless Chromium with a fresh profile. It keeps the text
// and HTML of every page it opened and the body of every response.
type browser struct {
	ctx   context.Context
	shots string

	mu        sync.Mutex
	pages     map[string]string
	responses map[string][]byte // URL (query dropped) + "#" + request ID → body
	decodeN   int
}

func newBrowser(t *testing.T, parent context.Context, chromium string) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(chromium), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1600, 3000)}
	for _, f := range chromiumFlags {
		opts = append(opts, chromedp.Flag(f, true))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(parent, opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	shots := repoFile(t, "browser/out")
	require.NoError(t, os.MkdirAll(shots, 0o755))
	b := &browser{ctx: ctx, shots: shots, pages: map[string]string{}, responses: map[string][]byte{}}

	urls := sync.Map{}
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *network.EventResponseReceived:
			urls.Store(e.RequestID, e.Response.URL)
		case *network.EventLoadingFinished:
			go b.keepBody(e.RequestID, &urls) // a command may not run inside the listener
		}
	}), "start Chromium at %s", chromium)
	return b
}

func (b *browser) keepBody(id network.RequestID, urls *sync.Map) {
	u, _ := urls.Load(id)
	raw, _ := u.(string)
	res, err := chromedp.Call(b.ctx, network.GetResponseBody, network.GetResponseBodyParams{RequestID: id})
	body := res.Body
	if err != nil {
		return // no body (a preflight, a redirect) or the page moved on
	}
	name, _, _ := strings.Cut(raw, "?")
	b.mu.Lock()
	defer b.mu.Unlock()
	b.responses[name+"#"+string(id)] = body
	if strings.HasSuffix(name, "/decode") {
		b.decodeN++
	}
}

// open loads url, clicks the tab labelled tab (if any) once it shows, and
// waits until ready accepts the page text (at most 45 s); then it saves a
// screenshot under browser/out and returns the text.
func (b *browser) open(t *testing.T, u, shot string, ready func(string) bool, tab string) string {
	t.Helper()
	require.NoError(t, chromedp.Do(b.ctx, chromedp.Navigate(u)))
	var text, html string
	deadline := time.Now().Add(45 * time.Second)
	clicked := tab == ""
	for {
		if !clicked {
			label, _ := json.Marshal(tab)
			ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`(() => {
				const el = [...document.querySelectorAll('a, button')].find(e => e.textContent.trim().startsWith(`+string(label)+`));
				if (el) { el.click(); return true }
				return false
			})()`))
			require.NoError(t, err)
			clicked = ok
		}
		var err error
		text, err = chromedp.Run(b.ctx, chromedp.Evaluate[string](pageText))
		require.NoError(t, err)
		html, err = chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
		require.NoError(t, err)
		if ready(text) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(time.Second) // let the last responses land
	if png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100)); err == nil {
		_ = os.WriteFile(filepath.Join(b.shots, shot+".png"), png, 0o644)
	}
	b.mu.Lock()
	b.pages[shot+" text"], b.pages[shot+" html"] = text, html
	b.mu.Unlock()
	if !ready(text) {
		t.Logf("page %s never became ready; its text:\n%.3000s", u, text)
	}
	return text
}

// pageText is the rendered text of the page and of its frames: the UI
// renders a workflow's current details (Markdown) in an iframe.
const pageText = `(() => {
	let t = document.body ? document.body.innerText : "";
	for (const f of document.querySelectorAll('iframe')) {
		try {
			if (f.contentDocument && f.contentDocument.body) { t += "\n" + f.contentDocument.body.innerText; continue }
		} catch (e) {}
		if (f.srcdoc) t += "\n" + new DOMParser().parseFromString(f.srcdoc, 'text/html').body.textContent;
	}
	return t;
})()`

func (b *browser) counts() (pages, responses int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pages), len(b.responses)
}

func (b *browser) decodes() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.decodeN
}

// leaks names every page and response that holds secret: verbatim, base64
// encoded (payload data is base64 in the UI's JSON), or inside a base64
// JSON string that decodes.
func (b *browser) leaks(secret string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var where []string
	check := func(name string, data []byte) {
		if holds(data, secret) {
			where = append(where, name)
		}
	}
	for name, text := range b.pages {
		check("page "+name, []byte(text))
	}
	for name, body := range b.responses {
		check("response "+name, body)
	}
	return where
}

func holds(data []byte, secret string) bool {
	if bytes.Contains(data, []byte(secret)) {
		return true
	}
	for k := range 3 {
		pad := append(make([]byte, k), secret...)
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			s := enc.EncodeToString(pad)
			// Drop the characters that depend on the bytes around it.
			inner := s[(k*4+2)/3 : len(s)-2]
			if len(inner) >= 8 && bytes.Contains(data, []byte(inner)) {
				return true
			}
		}
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	for dec.Decode(&v) == nil {
		found := false
		walk(v, func(s string) {
			if raw, err := base64.StdEncoding.DecodeString(s); err == nil && len(raw) > 0 && holds(raw, secret) {
				found = true
			}
		})
		if found {
			return true
		}
	}
	return false
}

func walk(v any, f func(string)) {
	switch x := v.(type) {
	case string:
		f(x)
	case []any:
		for _, e := range x {
			walk(e, f)
		}
	case map[string]any:
		for _, e := range x {
			walk(e, f)
		}
	}
}

// chromiumPath is Debian's chromium (MKTOS2S_CHROMIUM overrides). Nothing
// here downloads a browser: without one the test fails and says how to
// install it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("MKTOS2S_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no Chromium at %s (%v): install Debian's package with `apt-get install -y chromium`, or set MKTOS2S_CHROMIUM", p, err)
	}
	return p
}

// repoFile is a path relative to the module root.
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	_, self, _, ok := runtime.Caller(0)
	require.True(t, ok)
	return filepath.Join(filepath.Dir(self), "..", rel)
}
