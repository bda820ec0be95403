package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/mktos2s/mktos2s/internal/testenv/testcodec"
	"github.com/mktos2s/mktos2s/workflows"
)

func TestStatFields(t *testing.T) {
	tests := []struct {
		name  string
		stat  string
		utime string
		ppid  string
		err   bool
	}{
		{name: "plain comm", stat: "42 (worker) S 7 42 42 0 -1 4194560 100 0 0 0 150 30 0 0 20 0 12 0", utime: "150", ppid: "7"},
		{name: "comm with spaces and parentheses", stat: "42 (a) b (c)) R 9 42 42 0 -1 0 0 0 0 0 7 1 0 0", utime: "7", ppid: "9"},
		{name: "truncated", stat: "42 (worker) S 7 42", err: true},
		{name: "no comm", stat: "42 worker S 7", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := statFields([]byte(tt.stat))
			if tt.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.ppid, f[1])
			assert.Equal(t, tt.utime, f[11])
		})
	}
}

func TestStatusKB(t *testing.T) {
	status := "Name:\tworker\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t9\n"
	tests := []struct {
		key  string
		want int64
		err  bool
	}{
		{key: "VmHWM", want: 200 << 20},
		{key: "VmRSS", want: 100 << 20},
		{key: "Threads", err: true}, // not in kB
		{key: "VmSwap", err: true},  // absent
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, err := statusKB([]byte(status), tt.key)
			if tt.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// The test process reads its own /proc entry: CPU time grows with work and
// the peak is never below the current RSS.
func TestSampleProcOfSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	s1, err := sampleProc(os.Getpid())
	require.NoError(t, err)
	deadline := time.Now().Add(300 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	s2, err := sampleProc(os.Getpid())
	require.NoError(t, err)
	assert.Greater(t, s2.CPU, s1.CPU, "a busy loop of 300 ms must show as CPU time (x=%d)", x)
	assert.GreaterOrEqual(t, s2.HWM, s2.RSS)
	assert.Positive(t, s2.RSS)
}

func TestPercentile(t *testing.T) {
	tests := []struct {
		xs   []float64
		p    float64
		want float64
	}{
		{xs: []float64{5, 1, 4, 2, 3}, p: 50, want: 3},
		{xs: []float64{5, 1, 4, 2, 3}, p: 95, want: 5},
		{xs: []float64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, p: 95, want: 100},
		{xs: []float64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, p: 50, want: 50},
		{xs: []float64{7}, p: 50, want: 7},
		{xs: nil, p: 50, want: 0},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, percentile(tt.xs, tt.p), "p%v of %v", tt.p, tt.xs)
	}
}

func ev(typ enumspb.EventType, sec int) *historypb.HistoryEvent {
	return &historypb.HistoryEvent{EventType: typ, EventTime: timestamppb.New(time.Unix(int64(sec), 0))}
}

// The history follower must see a wait only where nothing is pending, count
// activities before the first signal, and take start and end from the events.
func TestHistoryStateWaiting(t *testing.T) {
	const (
		started   = enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
		wftSched  = enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
		wftStart  = enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED
		wftDone   = enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
		actSched  = enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
		actStart  = enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED
		actDone   = enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
		timer     = enumspb.EVENT_TYPE_TIMER_STARTED
		signalled = enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
		completed = enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
	)
	steps := []struct {
		events  []enumspb.EventType
		waiting bool
	}{
		{[]enumspb.EventType{started, wftSched}, false},
		{[]enumspb.EventType{wftStart, wftDone, actSched}, false},  // an activity is open
		{[]enumspb.EventType{actStart, actDone, wftSched}, false},  // a workflow task is pending
		{[]enumspb.EventType{wftStart, wftDone, actSched}, false},  // the next activity
		{[]enumspb.EventType{actStart, actDone, wftSched}, false},  //
		{[]enumspb.EventType{wftStart, wftDone, timer}, true},      // the consent wait
		{[]enumspb.EventType{signalled, wftSched}, false},          // woken
		{[]enumspb.EventType{wftStart, wftDone, actSched}, false},  // after the signal
		{[]enumspb.EventType{actStart, actDone, wftSched}, false},  //
		{[]enumspb.EventType{wftStart, wftDone, completed}, false}, // closed
	}
	h := historyState{outcome: outcome{ID: "wf"}}
	sec := 100
	for i, s := range steps {
		for _, typ := range s.events {
			h.add(ev(typ, sec))
			sec++
		}
		assert.Equal(t, s.waiting, h.waiting(), "after step %d", i)
	}
	assert.True(t, h.closed)
	require.NoError(t, h.Err)
	assert.Equal(t, 3, h.Activities)
	assert.Equal(t, 2, h.ActivitiesBeforeSignal)
	assert.True(t, time.Unix(100, 0).Equal(h.Start))
	assert.True(t, time.Unix(int64(sec-1), 0).Equal(h.End))
	assert.Equal(t, sec-100, h.Events)
}

func TestHistoryStateFailedRunIsAnError(t *testing.T) {
	h := historyState{outcome: outcome{ID: "wf"}}
	h.add(ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, 1))
	h.add(ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED, 2))
	assert.True(t, h.closed)
	require.Error(t, h.Err)
	assert.Contains(t, h.Err.Error(), "WorkflowExecutionFailed")
}

// Every bench tenant needs its own tenant and org (the workflow ID is one
// per tenant and org), on the happy path of a managed tenant.
func TestBenchSeed(t *testing.T) {
	seed, err := benchSeed(2, 3)
	require.NoError(t, err)
	hosts := map[string]string{}
	for _, o := range seed.Orgs {
		hosts[o.Host] = o.TenantID
	}
	_, before := benchTenant(1)
	assert.NotContains(t, hosts, before, "tenants start at from")
	ids := map[string]bool{}
	for i := 2; i < 5; i++ {
		id, host := benchTenant(i)
		assert.Equal(t, id, hosts[host], "org %s belongs to its own tenant", host)
		assert.False(t, ids[workflows.WorkflowID(id, host)], "workflow IDs differ")
		ids[workflows.WorkflowID(id, host)] = true
		in := workflows.OnboardingInput{TenantID: id, OrgURL: "https://" + host + ":8443"}.WithDefaults()
		require.NoError(t, in.Validate())
	}
	for _, tn := range seed.Tenants {
		if !strings.HasPrefix(tn.DisplayName, "bench") {
			continue
		}
		for _, d := range tn.Domains {
			assert.Equal(t, "Managed", d.AuthenticationType, "no federated domain: no HRD step")
		}
		assert.NotEmpty(t, tn.Provisioner.Secret)
	}
}

func TestHistoryStateRecordsChildren(t *testing.T) {
	h := historyState{outcome: outcome{ID: "wf"}}
	child := &commonpb.WorkflowExecution{WorkflowId: "rotation/x", RunId: "r1"}
	h.add(ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, 1))
	h.add(&historypb.HistoryEvent{
		EventType: enumspb.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
		EventTime: timestamppb.New(time.Unix(2, 0)),
		Attributes: &historypb.HistoryEvent_ChildWorkflowExecutionStartedEventAttributes{
			ChildWorkflowExecutionStartedEventAttributes: &historypb.ChildWorkflowExecutionStartedEventAttributes{WorkflowExecution: child},
		},
	})
	require.Len(t, h.Children, 1)
	assert.Equal(t, "rotation/x", h.Children[0].GetWorkflowId())
}

// The recorded completed onboarding, counted with Temporal Cloud's mapping:
// every kind the mapping names is found where the history has it.
func TestActionsOfTheRecordedOnboarding(t *testing.T) {
	f, err := os.Open("../workflows/testdata/onboarding-completed.json")
	require.NoError(t, err)
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	require.NoError(t, err)
	var a actionCount
	kinds := map[enumspb.EventType]int{}
	for _, e := range h.GetEvents() {
		a.add(e, false)
		kinds[e.GetEventType()]++
	}
	assert.Equal(t, kinds[enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED], a.Starts)
	assert.Equal(t, kinds[enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED], a.Activities, "no retries in the recorded run")
	assert.Equal(t, kinds[enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED], a.Signals)
	assert.Equal(t, kinds[enumspb.EVENT_TYPE_TIMER_STARTED], a.Timers)
	assert.Equal(t, kinds[enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED], a.Children)
	assert.LessOrEqual(t, a.Markers, kinds[enumspb.EVENT_TYPE_MARKER_RECORDED])
	assert.LessOrEqual(t, a.Upserts, kinds[enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES])
	assert.Equal(t, a.Starts+a.Activities+a.Markers+a.Timers+a.Signals+a.Upserts+a.Children+a.Other, a.Total)
	t.Logf("recorded onboarding: %+v", a)
}

func TestActionsRules(t *testing.T) {
	ev := func(t enumspb.EventType) *historypb.HistoryEvent { return &historypb.HistoryEvent{EventType: t} }
	started := func(attempt int32) *historypb.HistoryEvent {
		return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED,
			Attributes: &historypb.HistoryEvent_ActivityTaskStartedEventAttributes{ActivityTaskStartedEventAttributes: &historypb.ActivityTaskStartedEventAttributes{Attempt: attempt}}}
	}
	upsert := func(names ...string) *historypb.HistoryEvent {
		f := map[string]*commonpb.Payload{}
		for _, n := range names {
			f[n] = &commonpb.Payload{}
		}
		return &historypb.HistoryEvent{EventType: enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
			Attributes: &historypb.HistoryEvent_UpsertWorkflowSearchAttributesEventAttributes{UpsertWorkflowSearchAttributesEventAttributes: &historypb.UpsertWorkflowSearchAttributesEventAttributes{
				SearchAttributes: &commonpb.SearchAttributes{IndexedFields: f}}}}
	}
	tests := []struct {
		name   string
		sws    bool
		events []*historypb.HistoryEvent
		want   int
	}{
		{"start and signal", false, []*historypb.HistoryEvent{ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED), ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)}, 2},
		{"signal-with-start is one", true, []*historypb.HistoryEvent{ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED), ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED), ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)}, 2},
		{"activity retried twice", false, []*historypb.HistoryEvent{ev(enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED), started(3)}, 3},
		{"markers of one task are one", false, []*historypb.HistoryEvent{
			ev(enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED), ev(enumspb.EVENT_TYPE_MARKER_RECORDED), ev(enumspb.EVENT_TYPE_MARKER_RECORDED),
			ev(enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED), ev(enumspb.EVENT_TYPE_MARKER_RECORDED)}, 2},
		{"change-version upsert is exempt", false, []*historypb.HistoryEvent{upsert(changeVersionAttribute), upsert("OnboardingStep"), upsert("OnboardingStep", changeVersionAttribute)}, 2},
		{"timer and child intent", false, []*historypb.HistoryEvent{ev(enumspb.EVENT_TYPE_TIMER_STARTED), ev(enumspb.EVENT_TYPE_TIMER_FIRED), ev(enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED)}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a actionCount
			for _, e := range tt.events {
				a.add(e, tt.sws)
			}
			assert.Equal(t, tt.want, a.Total)
		})
	}
}

// The follow measurement reads the frontend's QueryWorkflow count from the
// server's Prometheus text, and nothing else.
func TestServerQueries(t *testing.T) {
	body := `# TYPE service_latency_count counter
service_latency_count{namespace="default",operation="QueryWorkflow",service_name="frontend"} 7
service_latency_count{namespace="other",operation="QueryWorkflow",service_name="frontend"} 2
service_latency_count{namespace="default",operation="QueryWorkflow",service_name="history"} 9
service_latency_count{namespace="default",operation="SignalWorkflowExecution",service_name="frontend"} 4
service_latency_sum{namespace="default",operation="QueryWorkflow",service_name="frontend"} 0.5
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(body)) }))
	defer srv.Close()
	n, err := serverCount(t.Context(), srv.URL, "QueryWorkflow")
	require.NoError(t, err)
	assert.Equal(t, 9, n)
}

// The onboarding's consent wait is its AwaitConsent activity: open, but
// the run waits; once it closes, the run is busy again.
func TestHistoryStateWaitingOnTheConsentPoll(t *testing.T) {
	sched := func(id int64, name string) *historypb.HistoryEvent {
		e := ev(enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, int(id))
		e.EventId = id
		e.Attributes = &historypb.HistoryEvent_ActivityTaskScheduledEventAttributes{ActivityTaskScheduledEventAttributes: &historypb.ActivityTaskScheduledEventAttributes{
			ActivityType: &commonpb.ActivityType{Name: name}}}
		return e
	}
	done := func(scheduled int64) *historypb.HistoryEvent {
		e := ev(enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, 50)
		e.Attributes = &historypb.HistoryEvent_ActivityTaskCompletedEventAttributes{ActivityTaskCompletedEventAttributes: &historypb.ActivityTaskCompletedEventAttributes{
			ScheduledEventId: scheduled}}
		return e
	}
	h := historyState{outcome: outcome{ID: "wf"}}
	h.add(ev(enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, 1))
	h.add(ev(enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 2))
	h.add(sched(5, consentPollActivity))
	assert.True(t, h.waiting(), "only the poll is open")
	h.add(sched(6, "VerifyConsent"))
	assert.False(t, h.waiting(), "a signal's check is work")
	h.add(done(6))
	assert.True(t, h.waiting())
	h.add(done(5))
	h.add(sched(9, "AddClientSecret"))
	assert.False(t, h.waiting())
}

// The scale phase reads each waiting onboarding's consent URL from its
// history instead of a query: from BuildConsentURL's result, an activity's
// in older runs and a local activity's marker in lean ones.
func TestHistoryStateReadsTheConsentURL(t *testing.T) {
	opts, err := testcodec.ClientOptions(client.Options{})
	require.NoError(t, err)
	for _, name := range []string{"onboarding-completed.json", "onboarding-completed-lean-consent.json"} {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open("../workflows/testdata/" + name)
			require.NoError(t, err)
			defer f.Close()
			hist, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
			require.NoError(t, err)
			h := historyState{dc: opts.DataConverter}
			for _, e := range hist.GetEvents() {
				h.add(e)
			}
			assert.Contains(t, h.ConsentURL, "/adminconsent?")
			assert.Contains(t, h.ConsentURL, "client_id=")

			plain := historyState{} // without the codec, nothing is decoded
			for _, e := range hist.GetEvents() {
				plain.add(e)
			}
			assert.Empty(t, plain.ConsentURL)
		})
	}
}
