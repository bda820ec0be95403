package main

import (
	"flag"
	"fmt"
	"time"
)

// Options size the run and its faults.
type Options struct {
	Granted          int // onboardings whose admin grants consent
	Denied           int // onboardings whose admin denies consent
	PermissionErrors int // onboardings that hit a 403 after consent
	// FederatedEvery makes every n-th onboarding use a tenant with a
	// Federated domain, so the Home Realm Discovery step and its undo run too.
	FederatedEvery int

	Kills          int // worker SIGKILLs (each followed by a restart)
	ServerRestarts int // dev server stop + start on the same database file
	MinGap, MaxGap time.Duration

	ServerErrorProbability float64
	ThrottleProbability    float64
	RetryAfterMin          int // seconds
	RetryAfterMax          int
	ReplicationLag         time.Duration
	// AppLagProbability is the chance that a new application is, for
	// ReplicationLag, unknown where its service principal is created and
	// its secret added (emulator Faults.AppLagMs).
	AppLagProbability float64
	// LostAnswerProbability is the chance that a create (createOps) is
	// applied and its answer lost, on top of the first write of every
	// create of every onboarding, which always loses its answer.
	LostAnswerProbability float64
	// RequestTimeout is the worker's microsoft.requestTimeout: how long it
	// waits for a stalled answer before it gives up and retries.
	RequestTimeout time.Duration

	// Cluster runs on the production-shaped stack of `make stack`
	// (PostgreSQL 15, two Temporal server nodes, two workers, the codec
	// endpoint and the consent callback) instead of the dev server: make
	// test-cluster. Bin holds server, sql and temporal; SchemaDir is the
	// server module's schema/postgresql/v12.
	Cluster        bool
	Bin, SchemaDir string
	NodeKills      int // SIGKILLs of Temporal server node 2, each followed by a restart
	PGRestarts     int // PostgreSQL stop + start on the same data and port
	FullRestarts   int // the whole stack (PostgreSQL, both nodes, workers, codec endpoint, callback) stopped and started
	// Held granted onboardings get their consent only after the full
	// restart: they wait through it.
	Held int

	RandSeed int64         // 0 = from the clock; printed so a run can be repeated
	Dir      string        // work directory (database, logs); empty = a new temporary one
	Timeout  time.Duration // the whole run
	LogLevel string        // the worker's and starter's log.level
}

// FullOptions is `make chaos`: 20 onboardings, 5 kills, 1 server restart.
func FullOptions() Options {
	return Options{
		Granted: 10, Denied: 5, PermissionErrors: 5, FederatedEvery: 3,
		Kills: 5, ServerRestarts: 1, MinGap: 2 * time.Second, MaxGap: 8 * time.Second,
		ServerErrorProbability: 0.2, ThrottleProbability: 0.1, RetryAfterMin: 1, RetryAfterMax: 2,
		ReplicationLag: 2 * time.Second, AppLagProbability: 0.5, LostAnswerProbability: 0.1, RequestTimeout: 5 * time.Second,
		Timeout: 25 * time.Minute, LogLevel: "debug",
	}
}

// ShortOptions is the form `make test` runs: the same faults, fewer
// onboardings, one kill and one server restart.
func ShortOptions() Options {
	o := FullOptions()
	o.Granted, o.Denied, o.PermissionErrors = 2, 1, 1
	o.FederatedEvery = 2
	o.Kills, o.ServerRestarts = 1, 1
	o.MinGap, o.MaxGap = 3*time.Second, 8*time.Second
	o.Timeout = 8 * time.Minute
	return o
}

// ClusterOptions is `make test-cluster`: the 20 onboardings and faults of
// `make chaos` on the production-shaped stack, with one worker kill, one
// SIGKILL of a server node, one PostgreSQL restart and one full stop and
// start of the stack that three onboardings wait through for their consent.
func ClusterOptions() Options {
	o := FullOptions()
	o.Cluster = true
	o.Kills, o.ServerRestarts = 1, 0
	o.NodeKills, o.PGRestarts, o.FullRestarts, o.Held = 1, 1, 1, 3
	// Spread over the first minute, while most onboardings still run.
	o.MinGap, o.MaxGap = 5*time.Second, 15*time.Second
	o.Timeout = 14 * time.Minute
	return o
}

func (o *Options) bind(fs *flag.FlagSet) {
	fs.IntVar(&o.Granted, "granted", o.Granted, "onboardings whose consent is granted")
	fs.IntVar(&o.Denied, "denied", o.Denied, "onboardings whose consent is denied")
	fs.IntVar(&o.PermissionErrors, "permission-errors", o.PermissionErrors, "onboardings that get a 403 after consent")
	fs.IntVar(&o.FederatedEvery, "federated-every", o.FederatedEvery, "every n-th onboarding uses an AD FS federated tenant (0 = none)")
	fs.IntVar(&o.Kills, "kills", o.Kills, "worker SIGKILLs while the onboardings run")
	fs.IntVar(&o.ServerRestarts, "server-restarts", o.ServerRestarts, "dev server stop+start on the same database file")
	fs.DurationVar(&o.MinGap, "min-gap", o.MinGap, "shortest pause between two chaos events")
	fs.DurationVar(&o.MaxGap, "max-gap", o.MaxGap, "longest pause between two chaos events")
	fs.Float64Var(&o.ServerErrorProbability, "p5xx", o.ServerErrorProbability, "probability of a 503 per emulator request")
	fs.Float64Var(&o.ThrottleProbability, "p429", o.ThrottleProbability, "probability of a 429 per emulator request")
	fs.IntVar(&o.RetryAfterMin, "retry-after-min", o.RetryAfterMin, "shortest Retry-After of a 429, seconds")
	fs.IntVar(&o.RetryAfterMax, "retry-after-max", o.RetryAfterMax, "longest Retry-After of a 429, seconds")
	fs.DurationVar(&o.ReplicationLag, "lag", o.ReplicationLag, "replication lag of new apps, principals and secrets")
	fs.Float64Var(&o.AppLagProbability, "papplag", o.AppLagProbability, "probability that a new app is not yet known, for -lag, to its service principal's creation and addPassword")
	fs.Float64Var(&o.LostAnswerProbability, "plost", o.LostAnswerProbability, "probability that a create is applied and its answer lost (besides each create's first answer, always lost)")
	fs.DurationVar(&o.RequestTimeout, "request-timeout", o.RequestTimeout, "the worker's microsoft.requestTimeout (how long a stalled answer is waited for)")
	fs.StringVar(&o.Bin, "bin", o.Bin, "cluster mode: directory of the Temporal server (server), its SQL tool (sql) and the CLI (temporal)")
	fs.StringVar(&o.SchemaDir, "schema-dir", o.SchemaDir, "cluster mode: the Temporal server module's schema/postgresql/v12")
	fs.IntVar(&o.NodeKills, "node-kills", o.NodeKills, "cluster mode: SIGKILLs of Temporal server node 2 (each restarted)")
	fs.IntVar(&o.PGRestarts, "pg-restarts", o.PGRestarts, "cluster mode: PostgreSQL restarts")
	fs.IntVar(&o.FullRestarts, "full-restarts", o.FullRestarts, "cluster mode: full stops and starts of the stack")
	fs.IntVar(&o.Held, "held", o.Held, "cluster mode: granted onboardings whose consent waits for the full restart")
	fs.Int64Var(&o.RandSeed, "seed", o.RandSeed, "random seed of the chaos schedule (0 = from the clock)")
	fs.StringVar(&o.Dir, "dir", o.Dir, "work directory for the database and the logs (default: a new temporary directory)")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "give up after this long")
	fs.StringVar(&o.LogLevel, "log-level", o.LogLevel, "log.level of the worker and the starter")
}

func (o Options) total() int { return o.Granted + o.Denied + o.PermissionErrors }

// seeded fills in a seed from the clock when none was given; the run
// prints it so that it can be repeated.
func (o Options) seeded() Options {
	if o.RandSeed == 0 {
		o.RandSeed = time.Now().UnixNano()
	}
	return o
}

// eventsSummary names the run's chaos events for its first line.
func (o Options) eventsSummary() string {
	if !o.Cluster {
		return fmt.Sprintf("%d kills, %d server restarts", o.Kills, o.ServerRestarts)
	}
	return fmt.Sprintf("production-shaped stack (PostgreSQL 15, 2 Temporal server nodes, 2 workers); %d worker kills, %d server node SIGKILLs, %d PostgreSQL restarts, %d full stops and starts (%d onboardings waiting through it)",
		o.Kills, o.NodeKills, o.PGRestarts, o.FullRestarts, o.Held)
}
