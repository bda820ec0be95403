package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/activities"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/testenv"
)

// shared is the one stack the tests of this package share when they can:
// each keeps to tenants of its own (sharedTenants). It starts on first use,
// so tests that need no stack do not pay for it, and TestMain stops it.
var shared struct {
	once sync.Once
	dir  string
	st   testStack
	err  error
}

// sharedTenants are copies of Contoso in the shared stack's emulator, one
// per test that onboards, so their objects never mix. TestOperatorCommands
// has the seed's own Contoso and Fabrikam.
var sharedTenants = slices.Concat([]testenv.Tenant{rotco, legacyco, consentco, denyco}, batchTenants(), fleetTenants())

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.st.Stack != nil {
		shared.st.Stop()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// sharedStack returns the package's shared stack, starting it the first time.
func sharedStack(t *testing.T) testStack {
	t.Helper()
	needTemporal(t)
	shared.once.Do(func() {
		seed := emulator.DefaultSeed()
		for _, tn := range sharedTenants {
			if shared.err = testenv.AddTenant(seed, tn); shared.err != nil {
				return
			}
		}
		if shared.dir, shared.err = os.MkdirTemp("", "mktos2s-starter-test-"); shared.err != nil {
			return
		}
		// Not a context with a timeout: the emulator of cli.StartStack lives
		// only as long as the context it was started with.
		shared.st, shared.err = newStack(context.Background(), shared.dir, seed)
	})
	require.NoError(t, shared.err, "the shared stack did not start")
	return shared.st
}

// hooks receives the consent hand-off webhook messages of every stack the
// tests start.
var hooks webhookReceiver

type webhookReceiver struct {
	once sync.Once
	srv  *httptest.Server
	mu   sync.Mutex
	msgs []activities.WebhookMessage
}

func (h *webhookReceiver) url() string {
	h.once.Do(func() {
		h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var m activities.WebhookMessage
			if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			h.mu.Lock()
			h.msgs = append(h.msgs, m)
			h.mu.Unlock()
		}))
	})
	return h.srv.URL + "/hook/T0/B0/token"
}

// received returns the messages for workflowID so far.
func (h *webhookReceiver) received(workflowID string) []activities.WebhookMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []activities.WebhookMessage
	for _, m := range h.msgs {
		if m.WorkflowID == workflowID {
			out = append(out, m)
		}
	}
	return out
}
