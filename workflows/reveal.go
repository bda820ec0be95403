package workflows

import (
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"
)

// SignalSecretRevealed records in the rotation's history that an operator
// revealed the tenant's client secret (`starter credentials --reveal`). It
// carries who and why, never the secret: an auditor reads it in the UI or
// with `temporal workflow show` without any key.
const SignalSecretRevealed = "secret-revealed"

// RevealSignal is the payload of secret-revealed.
type RevealSignal struct {
	By       string `json:"by"`                 // the operator's OS user (and host)
	Reason   string `json:"reason,omitempty"`   // --reason
	TenantID string `json:"tenantId"`           // whose secret
	OrgHost  string `json:"orgHost"`            // which org
	KeyID    string `json:"secretKeyId"`        // which secret (Entra key ID)
	Command  string `json:"command,omitempty"`  // e.g. "starter credentials --reveal"
	ClientAt string `json:"clientAt,omitempty"` // the operator's clock, RFC 3339 (the history's timestamp is the server's)
}

// RevealRecord is the last reveal as the rotation keeps it.
type RevealRecord struct {
	By     string    `json:"by"`
	Reason string    `json:"reason,omitempty"`
	KeyID  string    `json:"secretKeyId,omitempty"`
	At     time.Time `json:"at"`
}

// reveals counts the reveals of one tenant's secret across runs.
type reveals struct {
	Count int           `json:"reveals,omitempty"`
	Last  *RevealRecord `json:"lastReveal,omitempty"`
}

// receiveReveal reads one secret-revealed signal into r. A payload that does
// not decode is still counted: someone revealed, the record says unknown.
func (r *reveals) receive(ctx workflow.Context, c workflow.ReceiveChannel) {
	var raw converter.RawValue
	c.Receive(ctx, &raw)
	r.record(ctx, raw)
}

func (r *reveals) record(ctx workflow.Context, raw converter.RawValue) {
	var s RevealSignal
	if p := raw.Payload(); p != nil {
		_ = converter.GetDefaultDataConverter().FromPayload(p, &s)
	}
	r.Count++
	r.Last = &RevealRecord{By: orUnknown(truncate(s.By)), Reason: truncate(s.Reason), KeyID: truncate(s.KeyID), At: workflow.Now(ctx)}
	workflow.GetLogger(ctx).Info("client secret revealed", "by", r.Last.By, "reason", r.Last.Reason,
		"secretKeyId", r.Last.KeyID, "reveals", r.Count)
}

// drain counts the reveals still queued, before a continue-as-new.
func (r *reveals) drain(ctx workflow.Context) {
	ch := workflow.GetSignalChannel(ctx, SignalSecretRevealed)
	for {
		var raw converter.RawValue
		if !ch.ReceiveAsync(&raw) {
			return
		}
		r.record(ctx, raw)
	}
}

// listenForReveals counts every secret-revealed signal while the run lasts,
// whatever the main loop waits on. It only reads a channel and updates
// state, so it adds no command: histories without the signal replay as before.
func (r *reveals) listen(ctx workflow.Context, changed func()) {
	ch := workflow.GetSignalChannel(ctx, SignalSecretRevealed)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			r.receive(ctx, ch)
			changed()
		}
	})
}
