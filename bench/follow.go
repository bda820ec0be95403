package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"

	"github.com/mktos2s/mktos2s/internal/config"
	"github.com/mktos2s/mktos2s/internal/ctxtime"
	"github.com/mktos2s/mktos2s/workflows"
)

// followRecheck is the consent re-check interval of the onboarding the
// follow measurement watches: short, so that the window holds several
// re-checks (each one moves the workflow and so may cost queries).
const followRecheck = 5 * time.Second

// followResult is what a terminal running `starter start --wait` costs
// while its onboarding waits for consent.
type followResult struct {
	WindowSeconds float64 `json:"windowSeconds"`
	RecheckEvery  string  `json:"recheckInterval"`
	// Queries the server answered in the window (its QueryWorkflow count).
	Queries int `json:"queries"`
	// Heartbeats the server recorded in the window (an action each when
	// the consent re-checks run inside one heartbeating activity).
	Heartbeats int `json:"heartbeats"`
	// Retries: activity attempts that ended "not yet" in the window
	// (RespondActivityTaskFailed; a polling activity retried by the server
	// leaves no event until its last attempt, and each retry is an action).
	Retries int `json:"retries"`
	// Rechecks are the consent re-check timers that fired in the window.
	Rechecks int `json:"rechecks"`
	// Actions the onboarding's history recorded in the window.
	Actions int `json:"historyActions"`
	// At the product's default re-check interval:
	DefaultRecheck        string  `json:"defaultRecheckInterval"`
	QueriesPerHour        float64 `json:"queriesPerHour"`
	ActionsPerWaitingDay  float64 `json:"historyActionsPerWaitingDay"`
	OldLoopQueriesPerHour float64 `json:"oldLoopQueriesPerHour"`
}

// measureFollow runs the real starter binary (`start --wait`) for tenant i
// with a short consent re-check, lets the onboarding wait for consent for
// window, and counts the queries the server answered meanwhile (from its
// metrics) and the re-checks and actions in the history. Reading the
// history, as the follow loop does, is not a billable action; a query is.
func measureFollow(ctx context.Context, st *stack, i int, window time.Duration) (followResult, error) {
	r := followResult{RecheckEvery: followRecheck.String(), DefaultRecheck: workflows.DefaultConsentRecheckInterval.String(),
		OldLoopQueriesPerHour: float64(time.Hour / (250 * time.Millisecond))}
	if st.metricsURL == "" {
		return r, fmt.Errorf("follow: the server's metrics are not known (the production-shaped stack has its own)")
	}
	tenant, host := benchTenant(i)
	orgURL := "https://" + net.JoinHostPort(host, strconv.Itoa(st.emuPort))
	cfgFile, err := st.writeConfig("starter-follow", "")
	if err != nil {
		return r, err
	}
	env := append(baseEnv(st.runDir),
		config.EnvPrefix+"_CODEC_KEYS=bench="+st.codecKey,
		config.EnvPrefix+"_CONSENT_RECHECKINTERVAL="+followRecheck.String())
	starter, err := startChild(ctx, "starter-follow", st.logDir, st.runDir, st.starterBin,
		[]string{"--config", cfgFile, "start", "--wait", "--tenant-id", tenant, "--org-url", orgURL}, env, "")
	if err != nil {
		return r, err
	}
	defer starter.stop()
	id := workflows.OnboardingInput{TenantID: tenant, OrgURL: orgURL}.WorkflowID()
	defer func() {
		_ = st.plain.TerminateWorkflow(context.WithoutCancel(ctx), id, "", "bench: follow measurement done")
	}()

	// Until it waits for consent (its first re-check timer is running).
	exec := &commonpb.WorkflowExecution{WorkflowId: id}
	h := historyState{outcome: outcome{ID: id}}
	var token []byte
	for deadline := time.Now().Add(2 * time.Minute); !h.waiting(); {
		if time.Now().After(deadline) || h.closed {
			return r, fmt.Errorf("follow: %s did not reach the consent wait (starter log: %s)", id, filepath.Join(st.logDir, "starter-follow.log"))
		}
		resp, err := historyPage(ctx, st.plain.WorkflowService(), st.namespace, exec, token, true, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		if err != nil {
			if strings.Contains(err.Error(), "not found") {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			return r, err
		}
		for _, e := range resp.GetHistory().GetEvents() {
			h.add(e)
		}
		token = resp.GetNextPageToken()
	}
	before := h.Events
	// Let the starter print the waiting state before the window opens.
	time.Sleep(time.Second)
	q0, err := serverCount(ctx, st.metricsURL, "QueryWorkflow")
	if err != nil {
		return r, err
	}
	hb0, err := serverCount(ctx, st.metricsURL, "RecordActivityTaskHeartbeat")
	if err != nil {
		return r, err
	}
	rt0, err := serverCount(ctx, st.metricsURL, "RespondActivityTaskFailed")
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	if err := ctxtime.Sleep(ctx, window); err != nil {
		return r, err
	}
	q1, err := serverCount(ctx, st.metricsURL, "QueryWorkflow")
	if err != nil {
		return r, err
	}
	hb1, err := serverCount(ctx, st.metricsURL, "RecordActivityTaskHeartbeat")
	if err != nil {
		return r, err
	}
	rt1, err := serverCount(ctx, st.metricsURL, "RespondActivityTaskFailed")
	if err != nil {
		return r, err
	}
	r.Retries = rt1 - rt0
	r.WindowSeconds = time.Since(t0).Seconds()
	r.Queries, r.Heartbeats = q1-q0, hb1-hb0
	var acts actionCount
	n := 0
	if err := readHistory(ctx, st.plain.WorkflowService(), st.namespace, exec, func(e *historypb.HistoryEvent) {
		n++
		if n <= before {
			return
		}
		acts.add(e, false)
		if e.GetEventType() == enumspb.EVENT_TYPE_TIMER_FIRED {
			r.Rechecks++
		}
	}); err != nil {
		return r, err
	}
	r.Actions = acts.Total
	// Per hour (and day) at the default interval: the cost per re-check
	// times the re-checks that interval makes.
	perHour := float64(time.Hour / workflows.DefaultConsentRecheckInterval)
	if r.Rechecks > 0 {
		r.QueriesPerHour = float64(r.Queries) / float64(r.Rechecks) * perHour
		r.ActionsPerWaitingDay = float64(r.Actions) / float64(r.Rechecks) * perHour * 24
	} else {
		// No re-check moved the workflow: the terminal's queries do not
		// depend on the interval. The wait's own cost is its activity
		// attempts and heartbeats, one set per re-check period.
		r.QueriesPerHour = float64(r.Queries) / r.WindowSeconds * 3600
		periods := r.WindowSeconds / followRecheck.Seconds()
		r.ActionsPerWaitingDay = float64(r.Actions+r.Retries+r.Heartbeats) / periods * perHour * 24
	}
	progress("follow: %d queries, %d heartbeats, %d retries and %d re-check timers in %.0f s: %.1f queries an hour, %.0f actions per waiting day at the default %s re-check",
		r.Queries, r.Heartbeats, r.Retries, r.Rechecks, r.WindowSeconds, r.QueriesPerHour, r.ActionsPerWaitingDay, r.DefaultRecheck)
	return r, nil
}

func (f *followResult) markdown() string {
	s := fmt.Sprintf("`starter start --wait` on an onboarding waiting for consent (re-check every %s for the measurement): "+
		"%d queries in %.0f s with %d re-check timers fired, so **%.1f queries an hour** at the default %s re-check (the 250 ms loop it replaced: %.0f). "+
		"The waiting onboarding itself, in the window: %d actions in its history and %d activity heartbeats (an action each)",
		f.RecheckEvery, f.Queries, f.WindowSeconds, f.Rechecks, f.QueriesPerHour, f.DefaultRecheck, f.OldLoopQueriesPerHour,
		f.Actions, f.Heartbeats)
	s += fmt.Sprintf(", %d activity attempts that answered \"not yet\" (a retry each)", f.Retries)
	return s + fmt.Sprintf("; scaled per re-check, **%.0f actions per waiting day** at the default re-check.\n", f.ActionsPerWaitingDay)
}

// serverCount is the number of calls of a frontend operation (QueryWorkflow,
// RecordActivityTaskHeartbeat) the server has answered: its
// service_latency_count for the operation.
func serverCount(ctx context.Context, metricsURL, operation string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("server metrics: %w", err)
	}
	defer resp.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "service_latency_count{") || !strings.Contains(line, `operation="`+operation+`"`) ||
			!strings.Contains(line, `service_name="frontend"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("server metrics: %q: %w", line, err)
		}
		total += v
	}
	return int(total), sc.Err()
}
