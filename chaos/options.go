package main

import (
	"flag"
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
