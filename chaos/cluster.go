package main

// The cluster mode (make test-cluster): the same onboardings, faults, state
// checks and leak scan on the production-shaped stack of `make stack`, with
// its own chaos: a worker SIGKILL, a server node SIGKILL, a PostgreSQL
// restart and a full stop and start of the stack. The emulator stays in
// this process through all of it, as Microsoft does not restart when a
// customer's stack does.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/mktos2s/mktos2s/internal/ctxtime"
	"github.com/mktos2s/mktos2s/internal/devstack"
	"github.com/mktos2s/mktos2s/internal/metrics"
	"github.com/mktos2s/mktos2s/internal/testenv"
	"github.com/mktos2s/mktos2s/internal/testenv/testcodec"
)

// setUpCluster starts the emulator (prepare) and the stack pointed at it.
func (r *runner) setUpCluster(ctx context.Context) error {
	if r.o.Bin == "" || r.o.SchemaDir == "" {
		return errors.New("--cluster needs --bin (with server, sql and temporal) and --schema-dir (the server module's schema/postgresql/v12); make test-cluster passes both")
	}
	workerBin, starterBin, err := r.prepare(ctx)
	if err != nil {
		return err
	}
	// As root, PostgreSQL runs as the postgres user: it must reach its data
	// directory and its log below the work directory.
	for _, d := range []string{r.dir, r.logs} {
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	bin := filepath.Dir(workerBin)
	for _, name := range []string{"server", "sql", "temporal"} {
		src, err := filepath.Abs(filepath.Join(r.o.Bin, name))
		if err != nil {
			return err
		}
		if _, err := os.Stat(src); err != nil {
			return fmt.Errorf("%s is not built (make test-cluster builds it): %w", src, err)
		}
		if err := os.Symlink(src, filepath.Join(bin, name)); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	repo, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	// Payloads under the tests' public keys, so the scan decodes them as the
	// dev-server run does; the leak scan reads the views through the stack's
	// codec endpoint with this token.
	env := append([]string{
		"MKTOS2S_CODEC_KEYS=" + testcodec.KeyID + "=" + testcodec.KeyBase64, "MKTOS2S_CODEC_ACTIVEKEYID=" + testcodec.KeyID,
		"MKTOS2S_CUSTODY_KEYS=" + testcodec.CustodyKeyID + "=" + testcodec.CustodyKeyBase64, "MKTOS2S_CUSTODY_ACTIVEKEYID=" + testcodec.CustodyKeyID,
		"MKTOS2S_CODECSERVER_TOKEN=" + codecToken,
	}, r.processEnv()...)
	r.say("starting the production-shaped stack in %s", r.dir)
	if r.stack, err = devstack.StartCluster(ctx, devstack.ClusterOptions{
		Dir: r.dir, Bin: bin, Repo: repo, SchemaDir: r.o.SchemaDir, Seed: r.seed, Emulator: r.emu, Env: env, Log: r.w,
		// Away from make stack's 21400 up, which a benchmark may be running.
		FirstPort: 24400,
	}); err != nil {
		return err
	}
	for i, w := range r.stack.Workers {
		r.say("worker-%d pid %d, metrics %s", i+1, w.Pid(), r.stack.MetricsURLs[i])
	}
	r.say("codec endpoint %s, consent callback %s, emulator %s (outside the stack)", r.stack.CodecURL, r.stack.CallbackURL, r.emu.URL())
	r.printMembers(ctx)
	if err := r.dial(ctx, r.stack.Cluster.Frontend()); err != nil {
		return err
	}
	if err := r.newStarter(starterBin, r.stack.Env); err != nil {
		return err
	}
	// The operator's starter reads the stack's config file, as the workers do.
	r.starter.config = r.stack.ConfigFile
	return nil
}

// frontend is where the run's clients and the Temporal CLI connect.
func (r *runner) frontend() string {
	if r.stack != nil {
		return r.stack.Cluster.Frontend()
	}
	return r.server().Address
}

// databaseFiles are the dev server's SQLite files (none in cluster mode).
func (r *runner) databaseFiles() []string {
	if r.o.Cluster {
		return nil
	}
	return []string{r.devOpts.DBFile, r.devOpts.DBFile + "-wal"}
}

// databaseDumps are pg_dump of both of the cluster's databases: whoever
// copies them must find no secret either.
func (r *runner) databaseDumps(ctx context.Context) ([]source, error) {
	var out []source
	for _, db := range []string{"temporal", "temporal_visibility"} {
		b, err := r.stack.Cluster.Postgres().Dump(ctx, db)
		if err != nil {
			return nil, err
		}
		out = append(out, source{Name: "pg_dump " + db, Kind: "database", Data: b})
	}
	return out, nil
}

func (r *runner) stopWorkers() {
	if r.stack == nil {
		r.workers.Stop(10 * time.Second)
		return
	}
	for _, w := range r.stack.Workers {
		w.Stop(10 * time.Second)
	}
}

func (r *runner) workerExits() []string {
	if r.stack == nil {
		return r.workers.Unexpected()
	}
	return nil // a stack worker that died by itself fails its /readyz check
}

// releaseHeld lets the held onboardings have their consent.
func (r *runner) releaseHeld() { r.releaseOnce.Do(func() { close(r.resumed) }) }

// grant plays the admin on the consent page. In cluster mode the admin's
// browser then follows the redirect to the stack's consent callback
// (starter serve), which checks the signed state and signals the workflow;
// the dev-server run has the operator signal it with `starter consent`.
func (r *runner) grant(ctx context.Context, logName, consentURL string) error {
	if !r.o.Cluster {
		return retry(ctx, time.Second, func() error { return testenv.GrantConsent(ctx, r.emu, consentURL) })
	}
	return retry(ctx, 2*time.Second, func() error {
		loc, err := testenv.GrantConsentRedirect(ctx, r.emu, consentURL)
		if err != nil {
			return err
		}
		return r.visitCallback(ctx, logName, loc)
	})
}

// visitCallback opens the consent callback's URL as the admin's browser
// would, only on the stack's callback address.
func (r *runner) visitCallback(ctx context.Context, logName string, loc *url.URL) error {
	want, err := url.Parse(r.stack.CallbackURL)
	if err != nil {
		return err
	}
	if loc.Scheme != want.Scheme || loc.Host != want.Host || loc.Path != want.Path {
		return fmt.Errorf("the consent page redirected to %s, not to the stack's callback %s", loc.Redacted(), r.stack.CallbackURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return err
	}
	cl := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		return fmt.Errorf("consent callback: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	if f, ferr := os.OpenFile(filepath.Join(r.logs, logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); ferr == nil {
		fmt.Fprintf(f, "GET consent callback %s: %d\n", loc.Path, resp.StatusCode)
		f.Close()
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("consent callback answered %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// printMembers prints the cluster's membership as PostgreSQL holds it:
// every service of both nodes, by membership address.
func (r *runner) printMembers(ctx context.Context) {
	ms, err := r.stack.Cluster.Members(ctx)
	if err != nil {
		r.say("cluster membership: %v", err)
		return
	}
	byRole := map[string][]string{}
	var roles []string
	for _, m := range ms {
		if byRole[m.Role] == nil {
			roles = append(roles, m.Role)
		}
		byRole[m.Role] = append(byRole[m.Role], m.Address+" (since "+m.SessionStart+")")
	}
	var parts []string
	for _, role := range roles {
		parts = append(parts, fmt.Sprintf("%s %s", role, strings.Join(byRole[role], ", ")))
	}
	nodes := make([]string, 0, len(r.stack.Cluster.Nodes))
	for _, n := range r.stack.Cluster.Nodes {
		nodes = append(nodes, fmt.Sprintf("node %d pid %d frontend %s", n.Index, n.Pid(), n.Frontend()))
	}
	r.say("cluster: %s; membership (cluster_membership, heartbeat < 30 s): %s", strings.Join(nodes, ", "), strings.Join(parts, "; "))
}

// killStackWorker SIGKILLs worker n%2 and starts it again after down.
func (r *runner) killStackWorker(ctx context.Context, n int, down time.Duration) error {
	i := n % len(r.stack.Workers)
	w := r.stack.Workers[i]
	r.counts.scrape(ctx, w, r.stack.MetricsURLs[i])
	pid := w.Pid()
	if err := w.Kill(); err != nil {
		return err
	}
	r.say("chaos: SIGKILL %s pid %d (kill %d/%d); restart in %s", w.Name, pid, n+1, r.o.Kills, down.Round(time.Millisecond))
	_ = ctxtime.Sleep(context.WithoutCancel(ctx), down)
	if err := w.Start(); err != nil {
		return err
	}
	r.say("chaos: %s restarted, pid %d", w.Name, w.Pid())
	return nil
}

// killNode SIGKILLs server node 2 (the clients dial node 1's frontend, as
// they would a load balancer's address; node 2 owns shards, matching
// partitions and its share of the ring) and starts it again after down.
func (r *runner) killNode(ctx context.Context, down time.Duration) error {
	n := r.stack.Cluster.Nodes[len(r.stack.Cluster.Nodes)-1]
	pid := n.Pid()
	if err := n.Kill(); err != nil {
		return err
	}
	r.say("chaos: SIGKILL Temporal server node %d pid %d; restart in %s", n.Index, pid, down.Round(time.Millisecond))
	_ = ctxtime.Sleep(context.WithoutCancel(ctx), down)
	t := time.Now()
	if err := n.Start(); err != nil {
		return err
	}
	if err := r.stack.Cluster.WaitHealthy(context.WithoutCancel(ctx), n); err != nil {
		return err
	}
	r.say("chaos: Temporal server node %d restarted, pid %d, serving after %s", n.Index, n.Pid(), time.Since(t).Round(100*time.Millisecond))
	r.printMembers(ctx)
	return nil
}

// restartPostgres stops PostgreSQL (fast shutdown) and starts it again on
// the same data and port while both nodes run.
func (r *runner) restartPostgres(ctx context.Context) error {
	pg := r.stack.Cluster.Postgres()
	r.say("chaos: restarting PostgreSQL on 127.0.0.1:%d (pg_ctl stop -m fast, pg_ctl start)", pg.Port)
	t := time.Now()
	if err := pg.Restart(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	r.say("chaos: PostgreSQL back after %s", time.Since(t).Round(100*time.Millisecond))
	return nil
}

// fullRestart waits until the held onboardings wait for their consent, then
// stops the whole stack and starts it again on the same data.
func (r *runner) fullRestart(ctx context.Context) error {
	defer r.releaseHeld()
	held := 0
	for _, ob := range r.obs {
		if ob.Held {
			held++
		}
	}
	r.say("chaos: full restart once the %d held onboardings wait for consent", held)
	waiting := make(chan struct{})
	go func() { r.heldWaiting.Wait(); close(waiting) }()
	select {
	case <-waiting:
	case <-ctx.Done():
		return fmt.Errorf("the held onboardings never reached the consent wait: %w", ctx.Err())
	}
	// A stopping worker finishes the tasks it holds, and may complete an
	// onboarding meanwhile: its /metrics is read until it is gone.
	stopped := make(chan struct{})
	var scraping sync.WaitGroup
	for i, w := range r.stack.Workers {
		key := r.counts.scrape(ctx, w, r.stack.MetricsURLs[i])
		scraping.Add(1)
		go func() { defer scraping.Done(); r.counts.scrapeUntil(ctx, key, r.stack.MetricsURLs[i], stopped) }()
	}
	t := time.Now()
	r.say("chaos: FULL STOP: consent callback, codec endpoint, both workers (SIGTERM), both server nodes, PostgreSQL")
	r.stack.Halt()
	close(stopped)
	scraping.Wait()
	r.say("chaos: everything stopped after %s; the emulator (Microsoft) runs on", time.Since(t).Round(100*time.Millisecond))
	_ = ctxtime.Sleep(context.WithoutCancel(ctx), 2*time.Second)
	t = time.Now()
	if err := r.stack.Resume(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("start the stack again: %w", err)
	}
	var pids []string
	for _, w := range r.stack.Workers {
		pids = append(pids, fmt.Sprintf("%s pid %d", w.Name, w.Pid()))
	}
	r.say("chaos: FULL START: PostgreSQL, both nodes serving, %s, codec endpoint, consent callback up after %s", strings.Join(pids, ", "), time.Since(t).Round(100*time.Millisecond))
	r.printMembers(ctx)
	return nil
}

// workerCounts holds, per worker process the run started, the last values
// its /metrics showed: a killed or stopped process's counters die with it,
// so each is scraped just before.
type workerCounts struct {
	mu    sync.Mutex
	order []string
	last  map[string]counted
}

type counted struct {
	completed, compensated, throttled, retryAfter float64
	sdkFamilies                                   int
	err                                           error
}

func newWorkerCounts() *workerCounts { return &workerCounts{last: map[string]counted{}} }

// sdkFamilies are SDK metric families every polling worker shows.
var sdkFamilies = []string{"temporal_request_total", "temporal_worker_task_slots_available"}

func (wc *workerCounts) scrape(ctx context.Context, w *devstack.Proc, url string) string {
	key := fmt.Sprintf("%s pid %d", w.Name, w.Pid())
	wc.store(key, read(ctx, url))
	return key
}

// scrapeUntil reads url every 20 ms until stop, keeping the last answer
// under key: the values the process showed last before it went away.
func (wc *workerCounts) scrapeUntil(ctx context.Context, key, url string, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		if c := read(ctx, url); c.err == nil {
			wc.store(key, c)
		}
	}
}

// read is one scrape of the counters the run checks.
func read(ctx context.Context, url string) counted {
	var c counted
	f, err := metrics.Scrape(ctx, url)
	if err != nil {
		c.err = err
	} else {
		c = counted{completed: f.Sum(metrics.OnboardingsCompleted, nil), compensated: f.Sum(metrics.OnboardingsCompensated, nil),
			throttled: f.Sum(metrics.MicrosoftThrottled, nil), retryAfter: f.Sum(metrics.RetryAfterSeconds, nil)}
		for _, name := range sdkFamilies {
			if _, ok := f[name]; ok {
				c.sdkFamilies++
			}
		}
	}
	return c
}

func (wc *workerCounts) store(key string, c counted) {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	if _, ok := wc.last[key]; !ok {
		wc.order = append(wc.order, key)
	}
	wc.last[key] = c
}

// checkMetrics scrapes both workers a last time and their /readyz, prints
// what every worker process counted and compares the sums with the run.
func (r *runner) checkMetrics(ctx context.Context, outs map[string]outcome) []string {
	var violations []string
	for i, w := range r.stack.Workers {
		r.counts.scrape(ctx, w, r.stack.MetricsURLs[i])
		ready := strings.TrimSuffix(r.stack.MetricsURLs[i], "/metrics") + "/readyz"
		code, body := readyz(ctx, ready)
		r.say("%s pid %d %s: %d %s", w.Name, w.Pid(), ready, code, strings.TrimSpace(body))
		if code != http.StatusOK {
			violations = append(violations, fmt.Sprintf("%s /readyz answered %d (%s), want 200", w.Name, code, strings.TrimSpace(body)))
		}
	}
	fmt.Fprintln(r.w, "\nworker metrics (every worker process of the run, scraped just before it was killed or stopped, and at the end):")
	tw := tabwriter.NewWriter(r.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  process\tcompleted\tcompensated\tthrottled\tRetry-After s\tSDK families")
	var sum counted
	r.counts.mu.Lock()
	for _, k := range r.counts.order {
		c := r.counts.last[k]
		if c.err != nil {
			fmt.Fprintf(tw, "  %s\tscrape failed: %v\n", k, c.err)
			violations = append(violations, fmt.Sprintf("%s: /metrics could not be scraped: %v", k, c.err))
			continue
		}
		fmt.Fprintf(tw, "  %s\t%.0f\t%.0f\t%.0f\t%.0f\t%d/%d\n", k, c.completed, c.compensated, c.throttled, c.retryAfter, c.sdkFamilies, len(sdkFamilies))
		sum.completed += c.completed
		sum.compensated += c.compensated
		sum.throttled += c.throttled
		sum.retryAfter += c.retryAfter
		if c.sdkFamilies < len(sdkFamilies) {
			violations = append(violations, fmt.Sprintf("%s shows %d of the SDK's families %v", k, c.sdkFamilies, sdkFamilies))
		}
	}
	// A worker process that was killed or stopped before the end was scraped
	// just before: an onboarding it finished in that gap is lost with its
	// counters, and one whose completion it could not report is finished
	// (and counted) again elsewhere. So each such process may move a sum by one.
	slack := len(r.counts.order) - len(r.stack.MetricsURLs)
	if slack < 0 {
		slack = 0
	}
	r.counts.mu.Unlock()
	completed, compensated := 0, 0
	for _, o := range outs {
		switch o.Status {
		case "completed":
			completed++
		case "failed", "cancelled":
			compensated++
		}
	}
	fmt.Fprintf(tw, "  sum\t%.0f\t%.0f\t%.0f\t%.0f\t\n", sum.completed, sum.compensated, sum.throttled, sum.retryAfter)
	fmt.Fprintf(tw, "  the run\t%d\t%d\t\t\t\n", completed, compensated)
	_ = tw.Flush()
	if sum.throttled == 0 {
		violations = append(violations, "the workers counted no throttled answer although the emulator answered 429s")
	}
	if d := int(sum.completed) - completed; d > slack || -d > slack || (completed > 0 && sum.completed == 0) {
		violations = append(violations, fmt.Sprintf("the workers counted %.0f completed onboardings, the run saw %d (±%d for the processes that ended early)", sum.completed, completed, slack))
	}
	if d := int(sum.compensated) - compensated; d > slack || -d > slack || (compensated > 0 && sum.compensated == 0) {
		violations = append(violations, fmt.Sprintf("the workers counted %.0f compensated onboardings, the run saw %d (±%d for the processes that ended early)", sum.compensated, compensated, slack))
	}
	return violations
}

// sayHeld names the onboardings that waited for consent through the full
// restart, and how each ended (the table checks them like the others).
func (r *runner) sayHeld(outs map[string]outcome) {
	var held []string
	for _, ob := range r.obs {
		if ob.Held {
			held = append(held, fmt.Sprintf("%s %s", ob.TenantID, outs[ob.TenantID]))
		}
	}
	if len(held) > 0 {
		r.say("waited for consent through the full stop and start, granted after it: %s", strings.Join(held, "; "))
	}
}

// readyz is the status and body of GET url, retried for up to 30 s: a
// worker restarted moments ago shows among the pollers within seconds.
func readyz(ctx context.Context, url string) (int, string) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := 0, ""
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err == nil {
			var resp *http.Response
			if resp, err = http.DefaultClient.Do(req); err == nil {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
				resp.Body.Close()
				code, body = resp.StatusCode, string(b)
			}
		}
		if err != nil {
			body = err.Error()
		}
		if code == http.StatusOK || time.Now().After(deadline) || ctxtime.Sleep(ctx, time.Second) != nil {
			return code, body
		}
	}
}
