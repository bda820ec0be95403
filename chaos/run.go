package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/mktos2s/mktos2s/internal/ctxtime"
	"github.com/mktos2s/mktos2s/internal/devserver"
	"github.com/mktos2s/mktos2s/internal/devstack"
	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/internal/testenv"
	"github.com/mktos2s/mktos2s/internal/testenv/testcodec"
	"github.com/mktos2s/mktos2s/workflows"
)

// The operations answered with 403 for the permission-error onboardings,
// one per onboarding in turn, so compensation starts from different steps.
var permissionOps = []struct{ op, code string }{
	{"graph.addPassword", "Authorization_RequestDenied"},
	{"dataverse.createSystemUser", "0x80040220"},
	{"dataverse.associateRole", "0x80040220"},
	{"dataverse.updateMarketoConfig", "0x80040220"},
	{"dataverse.publishAllXml", "0x80040220"},
}

const (
	contosoID  = "11111111-1111-1111-1111-111111111111"
	fabrikamID = "22222222-2222-2222-2222-222222222222"
	namespace  = "default"
)

// Report is what a run found.
type Report struct {
	Dir            string
	Rows           []row
	Kills          int
	ServerRestarts int
	NodeKills      int // cluster mode
	PGRestarts     int
	FullRestarts   int
	WorkerExits    []string // worker exits nobody asked for (restarted)
	Leak           LeakReport
	Violations     []string
	LostAnswers    map[string]map[string]int // operation -> mode -> answers lost
	Elapsed        time.Duration
}

// LeakReport counts what the secret-leak scan read and found.
type LeakReport struct {
	Secrets        int // distinct values scanned for (issued app secrets + the provisioner's)
	IssuedSecrets  int // client secrets the emulator's audit log lists as added
	CapturedValues int // issued values also recovered from decoded payloads
	// Untold lists audit-log key IDs whose value the emulator never told:
	// the scan could not look for them.
	Untold         []string
	Histories      int
	Decoded        int // histories and descriptions read through the codec endpoint, as the UI shows them
	SearchAttrDocs int
	Logs           int
	DBFiles        int // the dev server's database and WAL files, or pg_dump of both databases
	Bytes          int64
	Hits           []hit
}

type runner struct {
	o    Options
	w    io.Writer
	plan plan
	dir  string
	logs string

	emu     *emulator.Server
	seed    *emulator.Seed
	devOpts devserver.Options
	devMu   sync.Mutex
	dev     *devserver.Server
	env     *testenv.Env
	c       client.Client
	dc      converter.DataConverter
	workers *supervisor
	starter starterCLI
	tbin    string

	// The cluster mode: the stack instead of dev and workers.
	stack *devstack.ClusterStack
	// resumed is closed when the full restarts are over: the held
	// onboardings wait for it before their consent; heldWaiting counts
	// those that wait for it.
	resumed     chan struct{}
	releaseOnce sync.Once
	heldWaiting sync.WaitGroup
	counts      *workerCounts

	obs []onboarding

	issuedMu sync.Mutex
	issued   map[string]string // key ID -> every client secret value the emulator issued
}

// Run performs one chaos run and reports on it. An error means the run
// could not be carried out; violations are in the report.
func Run(ctx context.Context, o Options, w io.Writer) (*Report, error) {
	if o.total() == 0 {
		return nil, errors.New("no onboardings to run")
	}
	o = o.seeded()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	t0 := time.Now()
	r := &runner{o: o, w: w, plan: newPlan(o), issued: map[string]string{}, resumed: make(chan struct{}), counts: newWorkerCounts()}
	rep := &Report{}
	defer r.close()
	setUp := r.setUp
	if o.Cluster {
		setUp = r.setUpCluster
	}
	for _, ob := range r.plan.Onboardings {
		if ob.Held {
			r.heldWaiting.Add(1)
		}
	}
	if o.FullRestarts == 0 {
		r.releaseHeld()
	}
	if err := setUp(ctx); err != nil {
		return nil, err
	}
	rep.Dir = r.dir

	chaosCtx, stopChaos := context.WithCancel(ctx)
	chaosDone := make(chan chaosResult, 1)
	go func() { chaosDone <- r.chaos(chaosCtx) }()

	outs := r.driveAll(ctx)
	stopChaos()
	cr := <-chaosDone
	rep.Kills, rep.ServerRestarts = cr.kills, cr.restarts
	rep.NodeKills, rep.PGRestarts, rep.FullRestarts = cr.nodeKills, cr.pgRestarts, cr.fullRestarts
	if o.Cluster {
		r.say("all %d onboardings ended after %s; %d worker kills, %d server node SIGKILLs, %d PostgreSQL restarts, %d full stops and starts",
			len(r.obs), time.Since(t0).Round(time.Second), cr.kills, cr.nodeKills, cr.pgRestarts, cr.fullRestarts)
	} else {
		r.say("all %d onboardings ended after %s; %d worker kills, %d server restarts", len(r.obs), time.Since(t0).Round(time.Second), cr.kills, cr.restarts)
	}
	if cr.err != nil {
		rep.Violations = append(rep.Violations, "chaos: "+cr.err.Error())
	}
	if cr.kills < o.Kills {
		rep.Violations = append(rep.Violations, fmt.Sprintf("only %d of %d worker kills happened while onboardings ran", cr.kills, o.Kills))
	}
	for _, c := range []struct {
		done, want int
		what       string
	}{{cr.restarts, o.ServerRestarts, "server restarts"}, {cr.nodeKills, o.NodeKills, "server node SIGKILLs"},
		{cr.pgRestarts, o.PGRestarts, "PostgreSQL restarts"}, {cr.fullRestarts, o.FullRestarts, "full stops and starts"}} {
		if c.done < c.want {
			rep.Violations = append(rep.Violations, fmt.Sprintf("only %d of %d %s happened while onboardings ran", c.done, c.want, c.what))
		}
	}

	// The table: outcome and emulator state per tenant.
	rep.Rows = evaluate(r.obs, outs, r.emu.State(), r.seed, workflows.DefaultSecurityRoleName, time.Now())
	fmt.Fprintln(w)
	printTable(w, rep.Rows)
	for _, row := range rep.Rows {
		if len(row.Problems) > 0 {
			rep.Violations = append(rep.Violations, row.Tenant+": "+strings.Join(row.Problems, "; "))
		}
	}

	rep.LostAnswers = r.emu.LostAnswers()
	rep.Violations = append(rep.Violations, printLost(w, rep.LostAnswers, r.reachedOps())...)

	if o.Cluster {
		r.sayHeld(outs)
		rep.Violations = append(rep.Violations, r.checkMetrics(ctx, outs)...)
	}
	// Stop the worker so its last log lines are on disk before the scan.
	r.stopWorkers()
	rep.WorkerExits = r.workerExits()
	for _, e := range rep.WorkerExits {
		r.say("note: %s (restarted)", e)
	}
	leak, err := r.leakScan(ctx)
	if err != nil {
		return rep, fmt.Errorf("secret-leak scan: %w", err)
	}
	rep.Leak = leak
	fmt.Fprintf(w, "\nsecret-leak scan: %d secret values (%d client secrets issued, %d of them also recovered from decoded payloads, plus the provisioner's)\n",
		leak.Secrets, leak.IssuedSecrets, leak.CapturedValues)
	dbWhat := "database files"
	if o.Cluster {
		dbWhat = "pg_dump outputs (temporal, temporal_visibility)"
	}
	fmt.Fprintf(w, "  read %d histories, %d views decoded by the codec endpoint, %d search-attribute listings, %d log files, %d %s, %d bytes: %d hits\n",
		leak.Histories, leak.Decoded, leak.SearchAttrDocs, leak.Logs, leak.DBFiles, dbWhat, leak.Bytes, len(leak.Hits))
	for _, h := range leak.Hits {
		rep.Violations = append(rep.Violations, fmt.Sprintf("secret #%d found (%s) in %s", h.Secret, h.How, h.Source))
	}
	for _, k := range leak.Untold {
		rep.Violations = append(rep.Violations, fmt.Sprintf("secret %s was issued but its value is unknown: the scan could not look for it", k))
	}
	if completed := countCompleted(outs); completed > 0 && leak.CapturedValues == 0 {
		rep.Violations = append(rep.Violations, "no secret value was recovered from the histories although onboardings completed: the scan would prove nothing")
	}

	rep.Elapsed = time.Since(t0)
	fmt.Fprintf(w, "\n%d onboardings, %d violations, %s (seed %d, logs in %s)\n", len(r.obs), len(rep.Violations),
		rep.Elapsed.Round(time.Second), o.RandSeed, r.logs)
	for _, v := range rep.Violations {
		fmt.Fprintln(w, "VIOLATION:", v)
	}
	return rep, nil
}

func countCompleted(outs map[string]outcome) int {
	n := 0
	for _, o := range outs {
		if o.Status == "completed" {
			n++
		}
	}
	return n
}

func (r *runner) say(format string, a ...any) {
	fmt.Fprintf(r.w, time.Now().Format("15:04:05 ")+format+"\n", a...)
}

// setUp builds the binaries, seeds one tenant and org per onboarding,
// starts the emulator with the faults, the dev server on a database file
// and the worker.
func (r *runner) setUp(ctx context.Context) error {
	workerBin, starterBin, err := r.prepare(ctx)
	if err != nil {
		return err
	}
	serverLog, err := os.OpenFile(filepath.Join(r.logs, "temporal-server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	r.devOpts = devserver.Options{Binary: r.tbin, Namespace: namespace, DBFile: filepath.Join(r.dir, "temporal.db"), Output: serverLog}
	r.say("starting the Temporal dev server on %s (WAL)", r.devOpts.DBFile)
	if r.dev, err = devserver.Start(ctx, r.devOpts); err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(r.dev.Address)
	r.devOpts.Port, _ = strconv.Atoi(port) // a restart must come back where the clients look

	r.env = &testenv.Env{Dev: r.dev, Emu: r.emu, Seed: r.seed}
	env := append(r.env.Environ(namespace), r.processEnv()...)
	if err := r.dial(ctx, r.dev.Address); err != nil {
		return err
	}
	if r.workers, err = newSupervisor(workerBin, env, r.logs); err != nil {
		return err
	}
	if err := r.workers.Start(); err != nil {
		return err
	}
	return r.newStarter(starterBin, env)
}

// processEnv is what the run adds to the worker's and the starter's
// environment on top of the stack's settings.
func (r *runner) processEnv() []string {
	return []string{"MKTOS2S_LOG_LEVEL=" + r.o.LogLevel, "MKTOS2S_LOG_FORMAT=json",
		// The starter puts this into the workflow input: a grant that the
		// replication lag hid from the first check is seen seconds later.
		"MKTOS2S_CONSENT_RECHECKINTERVAL=3s",
		"MKTOS2S_MICROSOFT_REQUESTTIMEOUT=" + r.o.RequestTimeout.String()}
}

// dial connects the run's own client (the codec's test key) to addr.
func (r *runner) dial(ctx context.Context, addr string) error {
	clientLog, err := os.OpenFile(filepath.Join(r.logs, "chaos-client.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	copts, err := testcodec.ClientOptions(client.Options{HostPort: addr, Namespace: namespace,
		Logger: tlog.NewStructuredLogger(slog.New(slog.NewJSONHandler(clientLog, nil)))})
	if err != nil {
		return err
	}
	r.dc = copts.DataConverter
	r.c, err = client.DialContext(ctx, copts)
	return err
}

func (r *runner) newStarter(bin string, env []string) error {
	home := filepath.Join(r.logs, "starter-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	r.starter = starterCLI{bin: bin, env: env, home: home, logDir: r.logs}
	return nil
}

// prepare makes the work directory, builds the worker and the starter,
// prints the plan and starts the emulator with one tenant and org per
// onboarding; both modes begin so.
func (r *runner) prepare(ctx context.Context) (workerBin, starterBin string, err error) {
	r.dir = r.o.Dir
	if r.dir == "" {
		if r.dir, err = os.MkdirTemp("", "mktos2s-chaos-"); err != nil {
			return "", "", err
		}
	}
	r.logs = filepath.Join(r.dir, "logs")
	bin := filepath.Join(r.dir, "bin")
	for _, d := range []string{r.logs, bin} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return "", "", err
		}
	}
	if r.o.Cluster {
		r.tbin = filepath.Join(r.o.Bin, "temporal")
	} else if r.tbin, err = devserver.Locate(); err != nil {
		return "", "", err
	}
	r.say("chaos run: %d granted, %d denied, %d permission errors; %s; 5xx %.0f%%, 429 %.0f%% (Retry-After %d-%d s), lag %s (new apps in Graph: %.0f%%); "+
		"lost answers: the first write of every create, then %.0f%% (request timeout %s); seed %d",
		r.o.Granted, r.o.Denied, r.o.PermissionErrors, r.o.eventsSummary(),
		r.o.ServerErrorProbability*100, r.o.ThrottleProbability*100, r.o.RetryAfterMin, r.o.RetryAfterMax, r.o.ReplicationLag, r.o.AppLagProbability*100,
		r.o.LostAnswerProbability*100, r.o.RequestTimeout, r.o.RandSeed)
	r.say("building the worker and the starter into %s", bin)
	if workerBin, starterBin, err = buildBinaries(ctx, bin); err != nil {
		return "", "", err
	}

	r.plan.print(r.w, r.o.RandSeed)
	r.obs = r.plan.Onboardings
	if r.seed, err = r.makeSeed(); err != nil {
		return "", "", err
	}
	emuLog, err := os.OpenFile(filepath.Join(r.logs, "emulator.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", "", err
	}
	r.emu, err = emulator.Start(context.WithoutCancel(ctx), emulator.Options{
		Addr: "127.0.0.1:0", DataDir: filepath.Join(r.dir, "emulator"), Seed: r.seed,
		Logger: slog.New(slog.NewJSONHandler(emuLog, &slog.HandlerOptions{Level: slog.LevelDebug})),
		// Kept in memory only, for the leak scan: also the values whose
		// response a killed worker never saw.
		SecretIssued: r.secretIssued,
	})
	return workerBin, starterBin, err
}

// makeSeed gives every onboarding its own tenant and org, copied from the
// default seed's Contoso (managed) or Fabrikam (federated), so a fault can
// target exactly one onboarding and the state check sees only its objects.
func (r *runner) makeSeed() (*emulator.Seed, error) {
	seed := emulator.DefaultSeed()
	seed.Faults = emulator.Faults{
		RouteFaults: emulator.RouteFaults{
			ThrottleProbability: r.o.ThrottleProbability, RetryAfterMinSeconds: r.o.RetryAfterMin, RetryAfterMaxSeconds: r.o.RetryAfterMax,
			ServerErrorProbability: r.o.ServerErrorProbability,
		},
		ReplicationLagMs: int(r.o.ReplicationLag.Milliseconds()),
		AppLagMs:         int(r.o.ReplicationLag.Milliseconds()), AppLagProbability: r.o.AppLagProbability,
	}
	// A stall outlasts the worker's request timeout, so the worker gives up on it.
	seed.Faults.Routes = lostRoutes(seed.Faults.RouteFaults, r.o.LostAnswerProbability, int(2*r.o.RequestTimeout.Milliseconds()))
	for i, ob := range r.obs {
		from := contosoID
		if ob.Federated {
			from = fabrikamID
		}
		if err := testenv.AddTenant(seed, testenv.Tenant{From: from, ID: ob.TenantID, DisplayName: fmt.Sprintf("Chaos%02d", i+1), OrgHost: ob.OrgHost}); err != nil {
			return nil, err
		}
	}
	return seed, nil
}

func (r *runner) secretIssued(keyID, secret string) {
	r.issuedMu.Lock()
	defer r.issuedMu.Unlock()
	r.issued[strings.ToLower(keyID)] = secret
}

func (r *runner) close() {
	if r.workers != nil {
		r.workers.Stop(5 * time.Second)
	}
	if r.stack != nil {
		r.stack.Stop()
	}
	if r.c != nil {
		r.c.Close()
	}
	r.devMu.Lock()
	if r.dev != nil {
		_ = r.dev.Stop()
	}
	r.devMu.Unlock()
	if r.emu != nil {
		_ = r.emu.Close()
	}
}

// driveAll runs every onboarding as an operator would and returns how each ended.
func (r *runner) driveAll(ctx context.Context) map[string]outcome {
	var mu sync.Mutex
	outs := map[string]outcome{}
	var wg sync.WaitGroup
	for i, ob := range r.obs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Staggered starts, as onboardings arrive in practice.
			if err := ctxtime.Sleep(ctx, time.Duration(i)*300*time.Millisecond); err != nil {
				return
			}
			out := r.drive(ctx, ob)
			r.say("%s (%s) ended: %s", ob.TenantID, ob.Kind, out)
			mu.Lock()
			outs[ob.TenantID] = out
			mu.Unlock()
		}()
	}
	wg.Wait()
	return outs
}

func (r *runner) orgURL(ob onboarding) string { return r.emu.OrgURL(ob.OrgHost) }

func (r *runner) drive(ctx context.Context, ob onboarding) outcome {
	log := "starter-" + ob.TenantID + ".log"
	// A held onboarding counts as waiting once it waits for consent, or once
	// it ended before that (the full restart must not wait for it).
	heldDone := func() {}
	if ob.Held {
		var once sync.Once
		heldDone = func() { once.Do(r.heldWaiting.Done) }
		defer heldDone()
	}
	id := workflows.WorkflowID(ob.TenantID, ob.OrgHost+":"+strconv.Itoa(r.emu.Port()))
	if ob.Kind == kindPermission {
		r.emu.FailNextTenant(ob.TenantID, ob.FailOp, -1, 403, ob.FailCode)
	}
	r.loseFirstAnswers(slices.Index(r.obs, ob), ob)
	target := []string{"--tenant-id", ob.TenantID, "--org-url", r.orgURL(ob)}
	// The server may be restarting: the operator tries again.
	err := retry(ctx, 2*time.Second, func() error {
		out, err := r.starter.run(ctx, log, append([]string{"start", "--consent-timeout", "30m"}, target...)...)
		if err != nil && strings.Contains(out, "already running") {
			return nil
		}
		return err
	})
	if err != nil {
		return outcome{Err: "start: " + err.Error()}
	}
	consentURL, err := r.waitConsentURL(ctx, id)
	if err != nil {
		return r.result(ctx, id)
	}
	if ob.Held {
		// It waits through the full restart(s) before the admin acts.
		heldDone()
		select {
		case <-r.resumed:
		case <-ctx.Done():
			return outcome{Err: "the full restart never finished"}
		}
	}
	if ob.Kind == kindDenied {
		err = retry(ctx, 2*time.Second, func() error {
			_, err := r.starter.run(ctx, log, append([]string{"consent", "--denied", "--by", "chaos admin", "--wait", "0s"}, target...)...)
			return sent(err)
		})
	} else {
		// The admin grants consent on the (throttled) consent page, then the
		// operator tells the workflow.
		err = r.grant(ctx, log, consentURL)
		if err == nil && !r.o.Cluster {
			err = retry(ctx, 2*time.Second, func() error {
				_, err := r.starter.run(ctx, log, append([]string{"consent", "--by", "chaos admin", "--wait", "0s"}, target...)...)
				return sent(err)
			})
		}
	}
	if err != nil {
		return outcome{Err: "consent: " + err.Error()}
	}
	return r.result(ctx, id)
}

// waitConsentURL polls the progress query (once a second: every query costs
// the worker a workflow task) until the consent URL is published.
func (r *runner) waitConsentURL(ctx context.Context, id string) (string, error) {
	for {
		p, err := testenv.Progress(ctx, r.c, id)
		if err == nil {
			if p.Step == workflows.StepAwaitingAdminConsent && p.ConsentURL != "" {
				return p.ConsentURL, nil
			}
			if p.Status == workflows.StatusFailed || p.Status == workflows.StatusCompleted || p.Status == workflows.StatusCancelled {
				return "", fmt.Errorf("%s ended before consent: %s", id, p.Error)
			}
		}
		if err := ctxtime.Sleep(ctx, time.Second); err != nil {
			return "", err
		}
	}
}

// result waits for the workflow to close and reads its result or failure
// through the codec client.
func (r *runner) result(ctx context.Context, id string) outcome {
	for {
		var res workflows.OnboardingResult
		err := r.c.GetWorkflow(ctx, id, "").Get(ctx, &res)
		if err == nil {
			passed := len(res.Validation) > 0
			for _, c := range res.Validation {
				passed = passed && c.Passed
			}
			return outcome{Status: "completed", Validated: passed}
		}
		var wee *temporal.WorkflowExecutionError
		if errors.As(err, &wee) {
			return closedOutcome(err)
		}
		if ctx.Err() != nil {
			return outcome{Err: "gave up waiting: " + err.Error()}
		}
		// The server is restarting, or the long poll timed out: wait on.
		_ = ctxtime.Sleep(ctx, time.Second)
	}
}

func closedOutcome(err error) outcome {
	var out outcome
	var (
		ae *temporal.ApplicationError
		ce *temporal.CanceledError
		te *temporal.TerminatedError
		to *temporal.TimeoutError
	)
	var rep workflows.FailureReport
	switch {
	case errors.As(err, &ae):
		out.Status = "failed"
		if ae.HasDetails() {
			_ = ae.Details(&rep)
		}
	case errors.As(err, &ce):
		out.Status = "cancelled"
		if ce.HasDetails() {
			_ = ce.Details(&rep)
		}
	case errors.As(err, &te):
		out.Status = "terminated"
	case errors.As(err, &to):
		out.Status = "timed-out"
	default:
		out.Status = "failed"
	}
	out.FailedStep, out.Reason = stepOf(rep), rep.Reason
	out.Undos = len(rep.Compensation)
	out.CompensationOK = out.Status == "failed" || out.Status == "cancelled"
	for _, u := range rep.Compensation {
		out.CompensationOK = out.CompensationOK && u.OK
	}
	return out
}

type chaosResult struct {
	kills, restarts                     int
	nodeKills, pgRestarts, fullRestarts int
	err                                 error
}

// chaos kills the worker and restarts the server at random moments until
// the planned events are done or the onboardings are over.
func (r *runner) chaos(ctx context.Context) chaosResult {
	// Held onboardings never wait beyond the chaos, whatever ends it.
	defer r.releaseHeld()
	var res chaosResult
	for _, ev := range r.plan.Events {
		if ctxtime.Sleep(ctx, ev.Gap) != nil {
			return res
		}
		switch ev.Kind {
		case eventKill:
			if r.o.Cluster {
				if res.err = r.killStackWorker(ctx, res.kills, ev.Down); res.err != nil {
					return res
				}
				res.kills++
				continue
			}
			pid, err := r.workers.Kill()
			if err != nil {
				res.err = err
				return res
			}
			res.kills++
			r.say("chaos: SIGKILL worker pid %d (kill %d/%d); restart in %s", pid, res.kills, r.o.Kills, ev.Down.Round(time.Millisecond))
			_ = ctxtime.Sleep(context.WithoutCancel(ctx), ev.Down)
			if err := r.workers.Start(); err != nil {
				res.err = err
				return res
			}
		case eventNode:
			if res.err = r.killNode(ctx, ev.Down); res.err != nil {
				return res
			}
			res.nodeKills++
		case eventPG:
			if res.err = r.restartPostgres(ctx); res.err != nil {
				return res
			}
			res.pgRestarts++
		case eventFull:
			if res.err = r.fullRestart(ctx); res.err != nil {
				return res
			}
			res.fullRestarts++
		case eventServer:
			r.say("chaos: stopping the Temporal dev server")
			if err := r.restartServer(ctx); err != nil {
				res.err = err
				return res
			}
			res.restarts++
			r.say("chaos: dev server back on %s with the same database (restart %d/%d)", r.devOpts.DBFile, res.restarts, r.o.ServerRestarts)
		}
	}
	return res
}

func (r *runner) restartServer(ctx context.Context) error {
	r.devMu.Lock()
	defer r.devMu.Unlock()
	if err := r.dev.Stop(); err != nil {
		return err
	}
	r.dev = nil
	if err := ctxtime.Sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	dev, err := devserver.Start(context.WithoutCancel(ctx), r.devOpts)
	if err != nil {
		return fmt.Errorf("restart the dev server: %w", err)
	}
	r.dev = dev
	r.env.Dev = dev
	return nil
}

func (r *runner) server() *devserver.Server {
	r.devMu.Lock()
	defer r.devMu.Unlock()
	return r.dev
}

// retry calls f until it succeeds or ctx ends.
func retry(ctx context.Context, every time.Duration, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		if ctxtime.Sleep(ctx, every) != nil {
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		}
	}
}

// listExecutions lists every workflow run in the namespace (no codec needed).
func (r *runner) listExecutions(ctx context.Context) ([][2]string, error) {
	var out [][2]string
	var token []byte
	for {
		resp, err := r.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: namespace, NextPageToken: token})
		if err != nil {
			return nil, err
		}
		for _, e := range resp.GetExecutions() {
			out = append(out, [2]string{e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId()})
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			return out, nil
		}
	}
}

// sent is nil when `starter consent` delivered its signal: exit code 5 says
// the grant is not verified yet (the workflow keeps checking) and 6 that the
// onboarding no longer waits (an earlier attempt got through).
func sent(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && (ee.ExitCode() == 5 || ee.ExitCode() == 6) {
		return nil
	}
	return err
}
