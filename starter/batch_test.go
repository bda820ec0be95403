package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/mktos2s/mktos2s/internal/cli"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/testenv"
	"github.com/mktos2s/mktos2s/internal/workerapp"
	"github.com/mktos2s/mktos2s/workflows"
)

func batchTenant(i int) string { return fmt.Sprintf("b0000000-0000-4000-8000-%012d", i) }

// TestBatchFileWithBadRowsIsRefusedWhole: 50 rows, 3 of them bad in
// different ways; the whole file is refused with exit code 2, each bad
// row named with its field and fix, and nothing is started: the
// configuration points at a Temporal address where nothing listens, so a
// start would have failed differently.
func TestBatchFileWithBadRowsIsRefusedWhole(t *testing.T) {
	cfg := writeConfig(t, baseYAML("temporal:\n  address: 127.0.0.1:1\n"))
	var b strings.Builder
	b.WriteString("tenantId,orgUrl,secretMonths,consentTimeout\n")
	for i := 1; i <= 50; i++ {
		tenant, org, months, timeout := batchTenant(i), fmt.Sprintf("https://org%d.crm.dynamics.com", i), "12", "72h"
		switch i {
		case 7:
			tenant = "not-a-guid"
		case 23:
			org = "https://org23.example.com"
		case 41:
			timeout = "10 minutes"
		}
		fmt.Fprintf(&b, "%s,%s,%s,%s\n", tenant, org, months, timeout)
	}
	file := filepath.Join(t.TempDir(), "tenants.csv")
	require.NoError(t, os.WriteFile(file, []byte(b.String()), 0o600))

	code, out := runCode(t.Context(), t, "--config", cfg, "start", "--from", file)
	assert.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "3 of 50 rows are invalid, nothing was started")
	for _, want := range []string{
		`row 7 (line 8), tenantId "not-a-guid"`,
		`row 23 (line 24), orgUrl "https://org23.example.com"`,
		`row 41 (line 42), consentTimeout "10 minutes": not a duration`,
	} {
		assert.Contains(t, out, want)
	}
	assert.Equal(t, 3, strings.Count(out, "\n  - row "), out)
	assert.NotContains(t, out, "127.0.0.1:1", "it never tried to reach Temporal")
}

func TestBatchYAMLWithUnknownKeyIsRefused(t *testing.T) {
	cfg := writeConfig(t, baseYAML("temporal:\n  address: 127.0.0.1:1\n"))
	file := filepath.Join(t.TempDir(), "tenants.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`tenants:
  - tenantId: `+batchTenant(1)+`
    orgUrl: https://a.crm.dynamics.com
  - tenantId: `+batchTenant(2)+`
    orgUrl: https://b.crm.dynamics.com
    secretMonth: 6
  - tenantId: `+batchTenant(1)+`
    orgUrl: https://a.crm.dynamics.com/
`), 0o600))
	code, out := runCode(t.Context(), t, "--config", cfg, "start", "--from", file)
	assert.Equal(t, cli.ExitBadInput, code, out)
	assert.Contains(t, out, "row 2 (line 6), secretMonth: unknown key")
	assert.Contains(t, out, "already in row 1")
}

// TestBatchOnboardsTwentyWithAtMostFiveInFlight runs 20 onboardings from a
// file against the emulator with --concurrency 5. The test checks from
// outside, in the server's histories, how many provisioned at once (the
// emulator adds latency to every Graph call so they overlap if they can).
func TestBatchOnboardsTwentyWithAtMostFiveInFlight(t *testing.T) {
	st := sharedStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var b strings.Builder
	b.WriteString("tenant-id,org-url\n")
	for i := 1; i <= batchSize; i++ {
		fmt.Fprintf(&b, "%s,%s\n", batchTenant(i), st.Emulator.OrgURL(fmt.Sprintf("batch%d.crm.localhost", i)))
	}
	file := filepath.Join(t.TempDir(), "tenants.csv")
	require.NoError(t, os.WriteFile(file, []byte(b.String()), 0o600))

	st.Emulator.SetFaults(emulator.Faults{Routes: map[string]emulator.RouteFaults{"graph": {LatencyMs: 150}}})
	defer st.Emulator.SetFaults(emulator.Faults{})

	c, err := workerapp.Dial(ctx, st.Config)
	require.NoError(t, err)
	defer c.Close()

	code, out := runCode(ctx, t, "--config", st.cfgFile, "start", "--from", file, "--concurrency", "5")
	assert.Equal(t, cli.ExitWaiting, code, "every row waits for consent:\n%s", out)
	assert.Contains(t, out, fmt.Sprintf("%d rows: %d waiting for consent, 0 done, 0 skipped, 0 failed", batchSize, batchSize))
	ids := make([]string, batchSize)
	for i := range ids {
		ids[i] = workflows.WorkflowID(batchTenant(i+1), fmt.Sprintf("batch%d.crm.localhost", i+1)+orgPort(st))
	}
	most := maxInFlight(ctx, t, c, ids)
	t.Logf("most onboardings provisioning at once, from the server's histories: %d", most)
	assert.LessOrEqual(t, most, 5, "never more than 5 provisioning at once")
	assert.GreaterOrEqual(t, most, 2, "the batch ran onboardings side by side")

	t.Run("a second run skips every row", func(t *testing.T) {
		code, out := runCode(ctx, t, "--config", st.cfgFile, "start", "--from", file)
		assert.Equal(t, cli.ExitOK, code, out)
		assert.Contains(t, out, fmt.Sprintf("%d rows: 0 waiting for consent, 0 done, %d skipped, 0 failed", batchSize, batchSize))
		assert.Contains(t, out, "already running")
	})
	t.Run("a dry run plans every row and starts nothing", func(t *testing.T) {
		code, out := runCode(ctx, t, "--config", st.cfgFile, "start", "--from", file, "--dry-run")
		assert.Equal(t, cli.ExitOK, code, out)
		assert.Contains(t, out, fmt.Sprintf("0 would start, %d would be skipped", batchSize))
	})
	// The batch's onboardings are cancelled so they do not linger in the shared stack.
	for _, id := range ids {
		_ = c.CancelWorkflow(ctx, id, "")
	}
}

const batchSize = 20

// batchTenants are the shared stack's tenants for the batch test.
func batchTenants() []testenv.Tenant {
	out := make([]testenv.Tenant, batchSize)
	for i := range out {
		out[i] = testenv.Tenant{From: contosoTenant, ID: batchTenant(i + 1), DisplayName: fmt.Sprintf("Batch%d", i+1), OrgHost: fmt.Sprintf("batch%d.crm.localhost", i+1)}
	}
	return out
}

// orgPort is the ":port" the emulator's org URLs carry.
func orgPort(st testStack) string {
	u := st.Emulator.OrgURL("x.crm.localhost")
	return u[strings.LastIndex(u, ":"):]
}

// maxInFlight reads each onboarding's history and returns the most that
// were provisioning at the same time: from the start event to the upsert
// that records the consent wait (server timestamps, no visibility lag).
func maxInFlight(ctx context.Context, t *testing.T, c client.Client, ids []string) int {
	t.Helper()
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, id := range ids {
		var start, waiting time.Time
		it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() && waiting.IsZero() {
			ev, err := it.Next()
			require.NoError(t, err)
			if ev.GetWorkflowExecutionStartedEventAttributes() != nil {
				start = ev.GetEventTime().AsTime()
			}
			if u := ev.GetUpsertWorkflowSearchAttributesEventAttributes(); u != nil {
				var step string
				if p := u.GetSearchAttributes().GetIndexedFields()["OnboardingStep"]; p != nil {
					_ = converter.GetDefaultDataConverter().FromPayload(p, &step)
				}
				if step == workflows.StepAwaitingAdminConsent {
					waiting = ev.GetEventTime().AsTime()
				}
			}
		}
		require.False(t, start.IsZero() || waiting.IsZero(), "%s: start %s, consent wait %s", id, start, waiting)
		edges = append(edges, edge{start, 1}, edge{waiting, -1})
	}
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta // an end before a start at the same instant
	})
	most, now := 0, 0
	for _, e := range edges {
		now += e.delta
		most = max(most, now)
	}
	return most
}
