package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/workflows"
)

// offboardedAfter reports when the tenant and org were offboarded, if their
// latest offboarding completed after since and was not a dry run. A
// completed onboarding (or the rotation it started) before that time has
// nothing left in Entra or Dataverse.
func offboardedAfter(ctx context.Context, c client.Client, t target, since time.Time) (time.Time, bool, error) {
	id := workflows.OffboardingWorkflowID(strings.TrimSpace(t.tenantID), t.orgHost())
	desc, err := c.DescribeWorkflowExecution(ctx, id, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("describe %s: %w", id, err)
	}
	info := desc.GetWorkflowExecutionInfo()
	if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED || info.GetCloseTime() == nil {
		return time.Time{}, false, nil
	}
	closed := info.GetCloseTime().AsTime()
	if !closed.After(since) {
		return time.Time{}, false, nil
	}
	var res workflows.OffboardingResult
	if err := c.GetWorkflow(ctx, id, info.GetExecution().GetRunId()).Get(ctx, &res); err != nil {
		return time.Time{}, false, fmt.Errorf("read the result of %s: %w", id, err)
	}
	if res.DryRun {
		return time.Time{}, false, nil
	}
	return closed, true, nil
}

// errOffboarded says that what a command would show or change was removed
// by an offboarding.
func errOffboarded(t target, at time.Time, what string) error {
	return fmt.Errorf("tenant %s, org %s was offboarded at %s: its app, client secrets and application user were removed and its secret rotation stopped, so %s; "+
		"to onboard it again run `starter start --tenant-id %s --org-url %s`",
		t.tenantID, t.orgHost(), at.UTC().Format(time.RFC3339), what, t.tenantID, t.orgURL)
}

// startPolicy decides whether an onboarding may start again after last, the
// latest run of its workflow ID, and with which ID reuse policy, so the
// server enforces the same rule for every client that uses it: a completed
// onboarding is live in production (a new run would adopt its app, replace
// Marketo's secret and, if it failed, delete it all), so only a failed,
// cancelled, terminated or timed-out run may be repeated, unless an
// offboarding completed after it.
func startPolicy(last snapshot, found, offboarded bool) (enumspb.WorkflowIdReusePolicy, bool) {
	if found && last.status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		if offboarded {
			return enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE, true
		}
		return enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY, false
	}
	return enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY, true
}

// startGate looks at the latest onboarding of in and at its offboarding and
// returns the reuse policy to start with, or the refusal when the org is
// already onboarded.
func startGate(ctx context.Context, c client.Client, in workflows.OnboardingInput) (enumspb.WorkflowIdReusePolicy, error) {
	t := target{tenantID: in.TenantID, orgURL: in.OrgURL}
	last, err := fetch(ctx, c, in.WorkflowID())
	found := err == nil
	switch {
	case errors.Is(err, errNotFound):
	case err != nil && !last.running():
		return 0, err
	}
	offboarded := false
	if found && last.status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		if _, offboarded, err = offboardedAfter(ctx, c, t, last.since()); err != nil {
			return 0, err
		}
	}
	policy, ok := startPolicy(last, found, offboarded)
	if !ok {
		return policy, errAlreadyOnboarded(t, last)
	}
	return policy, nil
}

func errAlreadyOnboarded(t target, last snapshot) error {
	clientID := "unknown"
	if last.Result != nil {
		clientID = last.Result.ClientID
	}
	flags := fmt.Sprintf("--tenant-id %s --org-url %s", t.tenantID, t.orgURL)
	return fmt.Errorf("tenant %s, org %s is already onboarded (completed %s, client ID %s, run %s); "+
		"a new onboarding would take over its live app and could revoke the secret Marketo uses. "+
		"For a new client secret run `starter rotate --now %s`; to start over run `starter offboard %s` first",
		t.tenantID, t.orgHost(), last.closed.UTC().Format(time.RFC3339), clientID, last.RunID, flags, flags)
}
