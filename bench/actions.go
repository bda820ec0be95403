package main

import (
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
)

// Temporal Cloud bills per action. actions counts them from a history with
// the mapping of Temporal's "Temporal Cloud Actions" page
// (https://docs.temporal.io/cloud/actions, "Workflow", "Activity", "Timer",
// "Signal" and "Update" sections; the README's "Performance" section lists them):
//
//   - WorkflowExecutionStarted: one (client start, continue-as-new, or a
//     child's start). Signal-with-start is one action for the start and
//     its signal together.
//   - StartChildWorkflowExecutionInitiated: one for the recorded intent; the
//     attempt to start it is the child's own WorkflowExecutionStarted.
//   - ActivityTaskScheduled: one; each retry one more (ActivityTaskStarted's
//     attempt − 1).
//   - MarkerRecorded (local activities, side effects, GetVersion): all the
//     markers of one workflow task are one action; local-activity retries
//     are in WorkflowTaskCompleted's metering metadata.
//   - TimerStarted, WorkflowExecutionSignaled, UpsertWorkflowSearchAttributes
//     (not when it only sets TemporalChangeVersion, which is exempt),
//     WorkflowExecutionOptionsUpdated, WorkflowExecutionUpdateAccepted: one.
//
// Queries are actions too but leave no event: the driver counts its own.
type actionCount struct {
	Total int `json:"total"`
	// By kind, for the report's breakdown.
	Starts     int `json:"starts"`
	Activities int `json:"activities"` // scheduled + retries
	Markers    int `json:"markers"`    // workflow tasks with markers + local-activity retries
	Timers     int `json:"timers"`
	Signals    int `json:"signals"`
	Upserts    int `json:"upserts"`
	Children   int `json:"children"` // child start intents
	Other      int `json:"other"`    // options updated, updates accepted

	markerInTask bool // a marker already counted for the current workflow task
	prev         enumspb.EventType
}

// changeVersionAttribute is the search attribute workflow.GetVersion
// maintains; its upserts are exempt from action counting.
const changeVersionAttribute = "TemporalChangeVersion"

func (a *actionCount) add(e *historypb.HistoryEvent, signalWithStart bool) {
	t := e.GetEventType()
	defer func() { a.prev = t }()
	switch t {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
		a.Starts++
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
		// Signal-with-start writes Started then Signaled: one action for both.
		if signalWithStart && a.prev == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED {
			return
		}
		a.Signals++
	case enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
		a.Children++
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
		a.Activities++
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
		if n := e.GetActivityTaskStartedEventAttributes().GetAttempt(); n > 1 {
			a.Activities += int(n) - 1
		}
	case enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
		a.markerInTask = false
		a.Markers += int(e.GetWorkflowTaskCompletedEventAttributes().GetMeteringMetadata().GetNonfirstLocalActivityExecutionAttempts())
	case enumspb.EVENT_TYPE_MARKER_RECORDED:
		if !a.markerInTask {
			a.markerInTask = true
			a.Markers++
		}
	case enumspb.EVENT_TYPE_TIMER_STARTED:
		a.Timers++
	case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
		fields := e.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()
		if _, ok := fields[changeVersionAttribute]; ok && len(fields) == 1 {
			return
		}
		a.Upserts++
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
		a.Other++
	default:
		return
	}
	a.Total = a.Starts + a.Activities + a.Markers + a.Timers + a.Signals + a.Upserts + a.Children + a.Other
}

// plus adds b's counts to a.
func (a actionCount) plus(b actionCount) actionCount {
	return actionCount{
		Total: a.Total + b.Total, Starts: a.Starts + b.Starts, Activities: a.Activities + b.Activities,
		Markers: a.Markers + b.Markers, Timers: a.Timers + b.Timers, Signals: a.Signals + b.Signals,
		Upserts: a.Upserts + b.Upserts, Children: a.Children + b.Children, Other: a.Other + b.Other,
	}
}
