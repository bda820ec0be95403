package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/mktos2s/mktos2s/activities"
	"github.com/mktos2s/mktos2s/internal/inert"
	"github.com/mktos2s/mktos2s/workflows"
)

const (
	markDone    = "✓"
	markCurrent = "…"
	markFailed  = "✗"
	markPending = "·"
	markUndone  = "↩"
)

// pendingSteps are the planned steps a run has not reached, in order. The
// plan of the default input is used; the Home Realm Discovery step is kept
// only for federated tenants and the opt-in sync filter only once started.
func pendingSteps(p workflows.Progress) []string {
	seen := map[string]bool{p.Step: true}
	for _, s := range p.CompletedSteps {
		seen[s] = true
	}
	preflightDone := slices.Contains(p.CompletedSteps, workflows.StepPreflight)
	var out []string
	for _, st := range workflows.Steps(workflows.OnboardingInput{}.WithDefaults()) {
		switch {
		case seen[st.Name]:
		case st.Name == workflows.StepConfigureHomeRealmDiscovery && preflightDone && !p.Federated:
		case st.Skipped:
		default:
			out = append(out, st.Name)
		}
	}
	return out
}

// Progress messages, errors and check reasons carry text from outside the
// product (Microsoft's error messages, a signal's sender and note, a consent
// page's error_description): inert.Text keeps their escape sequences and
// bidi controls off the operator's terminal.

// writeChecklist prints a run as a checklist: done, current, failed, undone
// and pending steps, the consent URL while it waits, and the outcome.
func writeChecklist(w io.Writer, s snapshot, ui string) {
	p := s.Progress
	if !s.offboarded.IsZero() {
		fmt.Fprintf(w, "Onboarding %s (%s, then offboarded at %s)\n", s.WorkflowID, s.Execution, s.offboarded.UTC().Format(time.RFC3339))
		fmt.Fprintln(w, "  Its app, client secrets and application user were removed and its secret rotation stopped; nothing of it is live.")
		if ui != "" {
			fmt.Fprintf(w, "Temporal UI: %s\n", ui)
		}
		return
	}
	fmt.Fprintf(w, "Onboarding %s (%s)\n", s.WorkflowID, s.Execution)
	for _, step := range p.CompletedSteps {
		if d, ok := s.timings[step]; ok {
			fmt.Fprintf(w, "  %s %s (%s)\n", markDone, step, durationText(d))
			continue
		}
		fmt.Fprintf(w, "  %s %s\n", markDone, step)
	}
	switch {
	case s.running() && p.Step != "" && !slices.Contains(p.CompletedSteps, p.Step):
		line := fmt.Sprintf("  %s %s", markCurrent, p.Step)
		if d, ok := s.timings[p.Step]; ok {
			line += " (" + durationText(d) + " so far)"
		}
		if p.Message != "" {
			line += " — " + inert.Text(p.Message)
		}
		fmt.Fprintln(w, line)
	case !s.running() && p.Status != workflows.StatusCompleted:
		writeFailure(w, p)
	}
	if p.ConsentDenial != "" && s.running() {
		// Anyone with the link can report a denial; it is shown, not obeyed.
		fmt.Fprintf(w, "    ! denial reported by the consent page, not acted on (stop with `starter consent --denied` or `starter cancel`): %s\n",
			inert.Text(p.ConsentDenial))
	}
	if p.ConsentURL != "" && !p.ConsentVerified && s.running() {
		fmt.Fprintf(w, "    consent URL (open it as a Global or Privileged Role Administrator of the tenant):\n    %s\n", p.ConsentURL)
	}
	writeSession(w, p, s.running())
	if s.running() {
		for _, step := range pendingSteps(p) {
			fmt.Fprintf(w, "  %s %s\n", markPending, step)
		}
	}
	if s.Result != nil {
		writeValidation(w, s.Result.Validation)
	}
	writeResources(w, p.Resources)
	if ui != "" {
		fmt.Fprintf(w, "Temporal UI: %s\n", ui)
	}
}

// writeFailure prints the failed step and what compensation undid.
func writeFailure(w io.Writer, p workflows.Progress) {
	step := p.FailedStep
	if step == "" {
		step = "onboarding"
	}
	fmt.Fprintf(w, "  %s %s: %s\n", markFailed, step, inert.Text(p.Error))
	for _, u := range p.Compensation {
		if u.OK {
			note := ""
			if u.Note != "" { // e.g. the application user was disabled, not deleted
				note = ": " + inert.Text(u.Note)
			}
			fmt.Fprintf(w, "  %s undone %s (%s)%s\n", markUndone, u.Step, u.Undo, note)
		} else {
			fmt.Fprintf(w, "  %s undo of %s FAILED (%s): %s — clean it up by hand\n", markFailed, u.Step, u.Undo, inert.Text(u.Error))
		}
	}
}

func writeValidation(w io.Writer, checks []activities.Check) {
	failed := 0
	for _, c := range checks {
		if c.Passed {
			fmt.Fprintf(w, "  %s check: %s\n", markDone, c.Name)
			continue
		}
		failed++
		fmt.Fprintf(w, "  %s check: %s: %s\n", markFailed, c.Name, inert.Text(c.Reason))
	}
	if len(checks) > 0 && failed == 0 {
		fmt.Fprintf(w, "%s validation passed\n", markDone)
	} else if failed > 0 {
		fmt.Fprintf(w, "%s validation failed (%d of %d checks)\n", markFailed, failed, len(checks))
	}
}

func writeResources(w io.Writer, r workflows.Resources) {
	var parts []string
	add := func(name, v string) {
		if v != "" {
			parts = append(parts, name+"="+v)
		}
	}
	add("appObjectId", r.AppObjectID)
	add("clientId", r.AppID)
	add("servicePrincipalId", r.ServicePrincipalID)
	add("secretKeyId", r.SecretKeyID)
	add("systemUserId", r.SystemUserID)
	add("roleId", r.RoleID)
	add("hrdPolicyId", r.HRDPolicyID)
	add("configId", r.ConfigID)
	if len(parts) > 0 {
		fmt.Fprintf(w, "Resources: %s\n", strings.Join(parts, " "))
	}
}

// live prints a run's progress as it happens: a ✓ line per completed step,
// a … line for each new step or message, the consent URL once, ✗ on failure.
type live struct {
	w       io.Writer
	done    map[string]bool
	step    string
	message string
	consent bool
	session bool // the session link was printed
	access  string
}

func newLive(w io.Writer) *live { return &live{w: w, done: map[string]bool{}} }

func (l *live) update(p workflows.Progress) {
	for _, s := range p.CompletedSteps {
		if !l.done[s] {
			l.done[s] = true
			fmt.Fprintf(l.w, "  %s %s\n", markDone, s)
		}
	}
	current := p.Step != "" && !l.done[p.Step] && p.Step != workflows.StepCompleted && p.Step != workflows.StepFailed
	if current && (p.Step != l.step || p.Message != l.message) && p.Message != "" {
		fmt.Fprintf(l.w, "  %s %s — %s\n", markCurrent, p.Step, inert.Text(p.Message))
	}
	l.step, l.message = p.Step, p.Message
	if p.ConsentURL != "" && !p.ConsentVerified && !l.consent {
		l.consent = true
		fmt.Fprintf(l.w, "    consent URL (open it as a Global or Privileged Role Administrator of the tenant):\n    %s\n", p.ConsentURL)
	}
	if p.SessionURL != "" && p.ProvisionerAccess == nil && !l.session {
		l.session = true
		writeSession(l.w, p, true)
	}
	if pa := p.ProvisionerAccess; pa != nil && pa.Until != l.access {
		l.access = pa.Until
		writeSession(l.w, p, false)
	}
}

// writeSession shows the customer-admin session mode: the one link while
// it is needed, and what the provisioner holds, where and until when.
func writeSession(w io.Writer, p workflows.Progress, running bool) {
	if p.SessionURL != "" && p.ProvisionerAccess == nil && running {
		fmt.Fprintf(w, "    the customer admin's one link (a Power Platform administrator opens it, consents and signs in):\n    %s\n", p.SessionURL)
	}
	if pa := p.ProvisionerAccess; pa != nil {
		fmt.Fprintf(w, "    provisioner access: %s in %s (environment %s, lent by %s), until %s\n", pa.Holds, pa.OrgURL, pa.Environment, pa.LentBy, pa.Until)
	}
}
