package workflows_test

// Replay of histories recorded on the real dev server (worker's integration
// tests, MKTOS2S_RECORD_HISTORY=1). A change to the Onboarding workflow that
// is not replay-safe for runs already in flight fails here. The payloads in
// testdata/ are encrypted exactly as in production, with the public test key
// of internal/testenv/testcodec.

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/proxy"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/proto"

	"github.com/mktos2s/mktos2s/internal/codec"
	"github.com/mktos2s/mktos2s/internal/custody"
	"github.com/mktos2s/mktos2s/internal/testenv/testcodec"
	"github.com/mktos2s/mktos2s/workflows"
)

const (
	completedHistory   = "testdata/onboarding-completed.json"
	compensatedHistory = "testdata/onboarding-compensated.json"
)

func quiet() tlog.Logger { return tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)) }

// replayer registers fn as the Onboarding workflow with the product's
// converters over the given codec options.
func replayer(t *testing.T, opts client.Options, fn any) worker.WorkflowReplayer {
	t.Helper()
	r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
		DataConverter:    opts.DataConverter,
		FailureConverter: opts.FailureConverter,
	})
	require.NoError(t, err)
	r.RegisterWorkflowWithOptions(fn, workflow.RegisterOptions{Name: workflows.WorkflowType})
	return r
}

// replayCompleted replays the completed history and decodes its result.
func replayCompleted(t *testing.T) workflows.OnboardingResult {
	t.Helper()
	r := replayer(t, testKeyOptions(t), workflows.Onboarding)
	require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(quiet(), completedHistory))
	// The SDK's replayer has GetWorkflowResult; its worker.WorkflowReplayer interface does not list it.
	withResult, ok := r.(interface{ GetWorkflowResult(string, any) error })
	require.True(t, ok, "the SDK's replayer no longer exposes GetWorkflowResult")
	var res workflows.OnboardingResult
	require.NoError(t, withResult.GetWorkflowResult("", &res))
	return res
}

func testKeyOptions(t *testing.T) client.Options {
	t.Helper()
	opts, err := testcodec.ClientOptions(client.Options{})
	require.NoError(t, err)
	return opts
}

func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	require.NoError(t, err)
	require.Contains(t, files, completedHistory)
	require.Contains(t, files, compensatedHistory)

	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			opts := testKeyOptions(t)
			r, err := worker.NewWorkflowReplayerWithOptions(worker.WorkflowReplayerOptions{
				DataConverter: opts.DataConverter, FailureConverter: opts.FailureConverter,
			})
			require.NoError(t, err)
			workflows.Register(r) // the product's own registration
			require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(quiet(), f))
		})
	}
}

// The completed history's result decodes with the test key into Marketo's
// package: the replay really ran the recorded run to its end.
func TestReplayCompletedHistoryYieldsTheResult(t *testing.T) {
	res := replayCompleted(t)
	// Recorded before secrets were sealed: the plain string still decodes
	// (a legacy custody.Sealed) and still reveals, without a custody key.
	assert.True(t, res.ClientSecret.Legacy(), "the recorded result carries the secret the old way")
	var noKey *custody.Keyring
	plain, err := noKey.Open(res.ClientSecret)
	require.NoError(t, err)
	assert.NotEmpty(t, plain)
	assert.NotEmpty(t, res.ClientID)
	assert.NotEmpty(t, res.Username)
	assert.Contains(t, res.CompletedSteps, workflows.StepConfigureHomeRealmDiscovery, "recorded from a federated tenant")
	assert.Contains(t, res.CompletedSteps, workflows.StepValidateConnection)
	require.Len(t, res.Validation, 7)
	for _, c := range res.Validation {
		assert.True(t, c.Passed, "%s: %s", c.Name, c.Reason)
	}
}

// Replay would catch a change that breaks determinism, and a history cannot
// be replayed without the key it was encrypted with: the replays above are
// not vacuous.
func TestReplayDetectsChanges(t *testing.T) {
	t.Run("a workflow that schedules something else first", func(t *testing.T) {
		changed := func(ctx workflow.Context, in workflows.OnboardingInput) (workflows.OnboardingResult, error) {
			if err := workflow.Sleep(ctx, time.Minute); err != nil {
				return workflows.OnboardingResult{}, err
			}
			return workflows.Onboarding(ctx, in)
		}
		r := replayer(t, testKeyOptions(t), changed)
		assert.Error(t, r.ReplayWorkflowHistoryFromJSONFile(quiet(), completedHistory))
	})
	t.Run("another key under the same key ID", func(t *testing.T) {
		other, err := codec.New(map[string][]byte{testcodec.KeyID: make([]byte, codec.KeySize)}, testcodec.KeyID)
		require.NoError(t, err)
		r := replayer(t, codec.ClientOptions(client.Options{}, other), workflows.Onboarding)
		// The input cannot be decrypted, so the workflow never schedules its
		// first activity; the replayer reports that mismatch, not the codec error.
		assert.Error(t, r.ReplayWorkflowHistoryFromJSONFile(quiet(), completedHistory))
	})
}

// The recorded files are committed, so every payload in them must be
// encrypted (search attributes are not payloads of the codec: Temporal
// indexes them) and the secret must not appear in them.
func TestRecordedHistoriesAreEncrypted(t *testing.T) {
	res := replayCompleted(t)
	secret := testcodec.Open(res.ClientSecret)
	require.NotEmpty(t, secret)

	files, err := filepath.Glob("testdata/*.json")
	require.NoError(t, err)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			h, err := client.HistoryFromJSON(bytes.NewReader(b), client.HistoryJSONOptions{})
			require.NoError(t, err)
			wire, err := proto.Marshal(h)
			require.NoError(t, err)
			assert.False(t, bytes.Contains(wire, []byte(secret)), "the client secret is in plain text")

			// The server writes one payload of its own: the details of an
			// activity cancelled before it started (the consent poll, in
			// its back-off, when a signal wins), a fixed word, not ours.
			for _, e := range h.GetEvents() {
				if c := e.GetActivityTaskCanceledEventAttributes(); c != nil && serverWord(c.GetDetails(), "ACTIVITY_ID_NOT_STARTED") {
					c.Details = nil
				}
			}
			var plain, sealed int
			require.NoError(t, proxy.VisitPayloads(context.Background(), h, proxy.VisitPayloadsOptions{
				SkipSearchAttributes: true,
				Visitor: func(_ *proxy.VisitPayloadsContext, ps []*commonpb.Payload) ([]*commonpb.Payload, error) {
					for _, p := range ps {
						if string(p.GetMetadata()[codec.MetadataEncoding]) == codec.EncodingEncrypted {
							sealed++
						} else {
							plain++
						}
					}
					return ps, nil
				},
			}))
			assert.Zero(t, plain, "payloads not encrypted")
			assert.Positive(t, sealed, "encrypted payloads")
		})
	}
}

// serverWord: the payloads are exactly the one JSON string the server writes.
func serverWord(ps *commonpb.Payloads, word string) bool {
	p := ps.GetPayloads()
	return len(p) == 1 && string(p[0].GetMetadata()["encoding"]) == "json/plain" && string(p[0].GetData()) == `"`+word+`"`
}
