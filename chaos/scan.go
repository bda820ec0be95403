package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"

	"github.com/mktos2s/mktos2s/internal/codec"
	"github.com/mktos2s/mktos2s/internal/custody"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/testenv/testcodec"
)

// leakScan collects every client secret value the emulator issued (told by
// the emulator as it issues one) and every secret value that went through
// the workflows (decoding the payloads with the codec, as only the product
// can), then searches what an operator or an attacker with access to Temporal or the
// logs could read: every history and description as the Temporal CLI shows
// it without the codec, the workflow listing with its search attributes,
// every log file of the run and the dev server's database file.
func (r *runner) leakScan(ctx context.Context) (LeakReport, error) {
	var rep LeakReport
	execs, err := r.listExecutions(ctx)
	if err != nil {
		return rep, fmt.Errorf("list workflows: %w", err)
	}

	values := map[string]bool{}
	capturedKeys := map[string]bool{}
	for _, ex := range execs {
		it := r.c.GetWorkflowHistory(ctx, ex[0], ex[1], false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				return rep, fmt.Errorf("history of %s: %w", ex[0], err)
			}
			for _, p := range eventPayloads(ev) {
				var v any
				if err := r.dc.FromPayload(p, &v); err != nil {
					continue // not JSON (e.g. binary/null): cannot hold a secret field
				}
				collectSecrets(v, openSealed(testcodec.Custody()), func(c capturedSecret) {
					values[c.Value] = true
					if c.KeyID != "" {
						capturedKeys[strings.ToLower(c.KeyID)] = true
					}
				})
			}
		}
	}
	r.issuedMu.Lock()
	issued := maps.Clone(r.issued)
	r.issuedMu.Unlock()
	for _, v := range issued {
		if values[v] {
			rep.CapturedValues++
		}
		values[v] = true
	}
	ours := map[string]bool{}
	for _, ob := range r.obs {
		ours[ob.TenantID] = true
	}
	lost := 0
	for _, t := range r.emu.State().Tenants {
		if !ours[t.ID] {
			continue
		}
		for _, ev := range t.PasswordEvents {
			if ev.Action != emulator.PasswordAdded {
				continue
			}
			rep.IssuedSecrets++
			k := strings.ToLower(ev.KeyID)
			if _, ok := issued[k]; !ok {
				rep.Untold = append(rep.Untold, ev.KeyID)
			}
			if !capturedKeys[k] {
				lost++
			}
		}
	}
	if lost > 0 {
		// An attempt killed between Graph's answer and the activity's
		// completion loses the value: it reached only the dead worker's
		// memory (and, if the product leaked it, its log). The emulator told
		// it anyway, so it is scanned for; the table checks the retry
		// removed the key.
		r.say("note: %d of %d issued client secrets never reached Temporal (a killed attempt); scanned for all the same", lost, rep.IssuedSecrets)
	}
	for _, t := range r.seed.Tenants {
		if t.Provisioner.Secret != "" {
			values[t.Provisioner.Secret] = true
		}
	}
	secrets := make([]string, 0, len(values))
	for v := range values {
		secrets = append(secrets, v)
	}
	rep.Secrets = len(secrets)

	var sources []source
	addr := r.frontend()
	list, err := r.temporalCLI(ctx, "workflow", "list", "--address", addr, "--namespace", namespace, "--output", "json")
	if err != nil {
		return rep, err
	}
	sources = append(sources, source{Name: "temporal workflow list", Kind: "search-attributes", Data: list})
	rep.SearchAttrDocs++
	// What the Temporal UI shows: every history and description decoded by
	// the codec endpoint (the codec key, never the custody key). Secrets are
	// sealed before they enter a payload, so they must not be here either.
	codecURL, token, stopCodec, err := r.codecEndpoint()
	if err != nil {
		return rep, err
	}
	defer stopCodec()
	for _, ex := range execs {
		for _, verb := range []string{"show", "describe"} {
			b, err := r.temporalCLI(ctx, "workflow", verb, "--address", addr, "--namespace", namespace,
				"--workflow-id", ex[0], "--run-id", ex[1], "--output", "json",
				"--codec-endpoint", codecURL, "--codec-auth", "Bearer "+token)
			if err != nil {
				return rep, err
			}
			rep.Decoded++
			sources = append(sources, source{Name: "temporal workflow " + verb + " --codec-endpoint " + ex[0] + " " + ex[1], Kind: "decoded", Data: b})
		}
	}
	for _, ex := range execs {
		for _, verb := range []string{"show", "describe"} {
			b, err := r.temporalCLI(ctx, "workflow", verb, "--address", addr, "--namespace", namespace,
				"--workflow-id", ex[0], "--run-id", ex[1], "--output", "json")
			if err != nil {
				return rep, err
			}
			kind := "history"
			if verb == "describe" {
				kind = "search-attributes"
				rep.SearchAttrDocs++
			} else {
				rep.Histories++
			}
			sources = append(sources, source{Name: "temporal workflow " + verb + " " + ex[0] + " " + ex[1], Kind: kind, Data: b})
		}
	}
	err = filepath.WalkDir(r.logs, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rep.Logs++
		sources = append(sources, source{Name: "log " + strings.TrimPrefix(path, r.dir+string(filepath.Separator)), Kind: "log", Data: b})
		return nil
	})
	if err != nil {
		return rep, err
	}
	// The server's own files too: whoever copies the database must find
	// nothing either (payloads are stored as the codec left them).
	if r.o.Cluster {
		dumps, err := r.databaseDumps(ctx)
		if err != nil {
			return rep, err
		}
		rep.DBFiles += len(dumps)
		sources = append(sources, dumps...)
	}
	for _, path := range r.databaseFiles() {
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // no WAL left after a checkpoint
		}
		if err != nil {
			return rep, err
		}
		rep.DBFiles++
		sources = append(sources, source{Name: "database " + filepath.Base(path), Kind: "database", Data: b})
	}
	for _, s := range sources {
		rep.Bytes += int64(len(s.Data))
	}
	rep.Hits, err = scanSecrets(secrets, sources)
	return rep, err
}

// openSealed opens custody.Sealed values (as JSON fields) with ring.
func openSealed(ring *custody.Keyring) func(sealed, keyID string) (string, bool) {
	return func(sealed, keyID string) (string, bool) {
		plain, err := ring.Open(custody.Sealed{Ciphertext: sealed, KeyID: keyID})
		return plain, err == nil
	}
}

// codecToken is the codec endpoint's bearer token in the run.
const codecToken = "chaos-codec-token"

// codecEndpoint serves the product's codec endpoint (codec key only, as
// `starter codec-server` does) on a loopback port until stop is called.
// In cluster mode it is the stack's own (starter codec-server).
func (r *runner) codecEndpoint() (url, token string, stop func(), err error) {
	if r.stack != nil {
		return r.stack.CodecURL, codecToken, func() {}, nil
	}
	cdc, err := testcodec.New()
	if err != nil {
		return "", "", nil, err
	}
	token = codecToken
	h, err := codec.NewHTTPHandler(cdc, codec.HTTPOptions{Token: token})
	if err != nil {
		return "", "", nil, err
	}
	srv := httptest.NewServer(h)
	return srv.URL, token, srv.Close, nil
}

// temporalCLI runs bin/temporal against the dev server, without any codec.
func (r *runner) temporalCLI(ctx context.Context, args ...string) ([]byte, error) {
	home := filepath.Join(r.dir, "cli-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, r.tbin, args...)
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("temporal %s: %w: %s", strings.Join(args[:2], " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// eventPayloads are the payloads of an event that can carry a secret:
// inputs and results of workflows, activities and child workflows.
func eventPayloads(ev *historypb.HistoryEvent) []*commonpb.Payload {
	var ps []*commonpb.Payloads
	if a := ev.GetWorkflowExecutionStartedEventAttributes(); a != nil {
		ps = append(ps, a.GetInput())
	}
	if a := ev.GetWorkflowExecutionCompletedEventAttributes(); a != nil {
		ps = append(ps, a.GetResult())
	}
	if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
		ps = append(ps, a.GetInput())
	}
	if a := ev.GetActivityTaskCompletedEventAttributes(); a != nil {
		ps = append(ps, a.GetResult())
	}
	if a := ev.GetStartChildWorkflowExecutionInitiatedEventAttributes(); a != nil {
		ps = append(ps, a.GetInput())
	}
	if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil {
		ps = append(ps, a.GetInput())
	}
	var out []*commonpb.Payload
	for _, p := range ps {
		out = append(out, p.GetPayloads()...)
	}
	return out
}
