package lifecycle

import (
	"testing"

	"github.com/stretchr/testify/assert"
	enumspb "go.temporal.io/api/enums/v1"
)

// TestStartPolicy: a completed onboarding is not started again unless an
// offboarding completed after it; anything else that ended may be, and the
// reuse policy handed to the server says the same, so a concurrent client
// cannot slip a re-run past a completion.
func TestStartPolicy(t *testing.T) {
	const (
		failedOnly = enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY
		duplicate  = enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
	)
	tests := []struct {
		name       string
		found      bool
		status     enumspb.WorkflowExecutionStatus
		offboarded bool
		policy     enumspb.WorkflowIdReusePolicy
		allowed    bool
	}{
		{"never onboarded", false, 0, false, failedOnly, true},
		{"completed", true, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, false, failedOnly, false},
		{"completed, then offboarded", true, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, true, duplicate, true},
		{"failed", true, enumspb.WORKFLOW_EXECUTION_STATUS_FAILED, false, failedOnly, true},
		{"cancelled", true, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, false, failedOnly, true},
		{"terminated", true, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, false, failedOnly, true},
		{"running (the conflict policy refuses it)", true, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, false, failedOnly, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			policy, allowed := StartPolicy(Run{Status: tt.status}, tt.found, tt.offboarded)
			assert.Equal(t, tt.policy, policy)
			assert.Equal(t, tt.allowed, allowed)
		})
	}
}
