package emulator

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Faults are the failures the emulator injects. Zero value = none.
type Faults struct {
	RouteFaults      `yaml:",inline"`
	ReplicationLagMs int `yaml:"replicationLagMs" json:"replicationLagMs"`
	// AppLagMs plays Entra's replication delay inside Graph: a new
	// application is, for AppLagMs, unknown to the replica that creates its
	// service principal (400 "does not reference a valid application
	// object") and to addPassword (404 Request_ResourceNotFound). It hits
	// each new application with AppLagProbability (0 = every one).
	AppLagMs          int                    `yaml:"appLagMs" json:"appLagMs,omitempty"`
	AppLagProbability float64                `yaml:"appLagProbability" json:"appLagProbability,omitempty"`
	Routes            map[string]RouteFaults `yaml:"routes" json:"routes,omitempty"`
}

// RouteFaults apply to every request (Faults), to one service ("graph", "dataverse", "entra")
// or to one operation ("graph.addPassword").
type RouteFaults struct {
	ThrottleProbability  float64 `yaml:"throttleProbability" json:"throttleProbability"`
	RetryAfterMinSeconds int     `yaml:"retryAfterMinSeconds" json:"retryAfterMinSeconds"`
	RetryAfterMaxSeconds int     `yaml:"retryAfterMaxSeconds" json:"retryAfterMaxSeconds"`
	// ThrottleCode pins the service protection code of Dataverse's 429s
	// (dataverseThrottles); "" picks one of the three at random.
	ThrottleCode           string  `yaml:"throttleCode" json:"throttleCode,omitempty"`
	ServerErrorProbability float64 `yaml:"serverErrorProbability" json:"serverErrorProbability"`
	ServerErrorStatus      int     `yaml:"serverErrorStatus" json:"serverErrorStatus"`
	LatencyMs              int     `yaml:"latencyMs" json:"latencyMs"`
	// LostAnswerProbability applies a write and then loses its answer
	// (LostAnswerMode: "5xx", "reset", "stall", or "" for any of them);
	// a stall lasts until the caller gives up, or StallMs (default 2 min).
	LostAnswerProbability float64 `yaml:"lostAnswerProbability" json:"lostAnswerProbability,omitempty"`
	LostAnswerMode        string  `yaml:"lostAnswerMode" json:"lostAnswerMode,omitempty"`
	StallMs               int     `yaml:"stallMs" json:"stallMs,omitempty"`
}

func (f Faults) validate() error {
	check := func(name string, r RouteFaults) error {
		if r.ThrottleProbability < 0 || r.ThrottleProbability > 1 || r.ServerErrorProbability < 0 || r.ServerErrorProbability > 1 ||
			r.LostAnswerProbability < 0 || r.LostAnswerProbability > 1 {
			return fmt.Errorf("faults %s: probabilities must be within 0..1", name)
		}
		if r.ThrottleCode != "" && !slices.ContainsFunc(dataverseThrottles, func(t throttleError) bool { return t.code == r.ThrottleCode }) {
			return fmt.Errorf("faults %s: throttleCode %q is not one of 0x80072322, 0x80072321, 0x80072326 (or empty for any)", name, r.ThrottleCode)
		}
		if !validLoseMode(r.LostAnswerMode) {
			return fmt.Errorf("faults %s: lostAnswerMode %q is not one of 5xx, reset, stall (or empty for any)", name, r.LostAnswerMode)
		}
		if r.RetryAfterMinSeconds < 0 || r.RetryAfterMaxSeconds < 0 || r.LatencyMs < 0 || r.StallMs < 0 {
			return fmt.Errorf("faults %s: negative duration", name)
		}
		if r.ServerErrorStatus != 0 && (r.ServerErrorStatus < 500 || r.ServerErrorStatus > 599) {
			return fmt.Errorf("faults %s: serverErrorStatus must be 5xx", name)
		}
		return nil
	}
	if f.ReplicationLagMs < 0 || f.AppLagMs < 0 {
		return fmt.Errorf("faults: negative replicationLagMs or appLagMs")
	}
	if f.AppLagProbability < 0 || f.AppLagProbability > 1 {
		return fmt.Errorf("faults: appLagProbability must be within 0..1")
	}
	if err := check("(global)", f.RouteFaults); err != nil {
		return err
	}
	for k, r := range f.Routes {
		if err := check(k, r); err != nil {
			return err
		}
	}
	return nil
}

// forOp picks the most specific fault settings for an operation.
func (f Faults) forOp(op string) RouteFaults {
	if r, ok := f.Routes[op]; ok {
		return r
	}
	if svc, _, ok := strings.Cut(op, "."); ok {
		if r, ok := f.Routes[svc]; ok {
			return r
		}
	}
	return f.RouteFaults
}

func (f Faults) lag() time.Duration { return time.Duration(f.ReplicationLagMs) * time.Millisecond }

// appLagUntil rolls the Graph replication delay of an application created
// now; the zero time means none. Called with s.mu held.
func (s *Server) appLagUntil() time.Time {
	f := s.faults
	if f.AppLagMs <= 0 || f.AppLagProbability > 0 && s.rng.Float64() >= f.AppLagProbability {
		return time.Time{}
	}
	return s.now().Add(time.Duration(f.AppLagMs) * time.Millisecond)
}

func (f Faults) clone() Faults {
	c := f
	if f.Routes != nil {
		c.Routes = make(map[string]RouteFaults, len(f.Routes))
		for k, v := range f.Routes {
			c.Routes[k] = v
		}
	}
	return c
}

// failRule is a pending FailNext.
type failRule struct {
	remaining int // <0 = always
	status    int
	code      string
}

// SetFaults replaces the injected faults.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f.clone()
}

// FailNext makes operation op fail the next times requests (times<0: always; 0: clear) with
// status and the service's error body carrying code.
func (s *Server) FailNext(op string, times int, status int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if times == 0 {
		delete(s.failNext, op)
		return
	}
	s.failNext[op] = &failRule{remaining: times, status: status, code: code}
}

// takeFailure consumes one FailNext for op; the caller holds no lock.
func (s *Server) takeFailure(op string) (failRule, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.failNext[op]
	if !ok {
		return failRule{}, false
	}
	out := *r
	if r.remaining > 0 {
		r.remaining--
		if r.remaining == 0 {
			delete(s.failNext, op)
		}
	}
	return out, true
}

// throttleError is one of Dataverse's service protection API limit errors
// (api-limits, "Service protection API limit errors returned"), all sent by
// the Web API as 429 with Retry-After.
type throttleError struct{ code, message string }

var dataverseThrottles = []throttleError{
	{"0x80072322", "Number of requests exceeded the limit of 6000 over time window of 300 seconds."},
	{"0x80072321", "Combined execution time of incoming requests exceeded limit of 1,200,000 milliseconds over time window of 300 seconds. " +
		"Decrease number of concurrent requests or reduce the duration of requests and try again later."},
	{"0x80072326", "Number of concurrent requests exceeded the limit of 52."},
}

// dataverseThrottle picks the service protection error of a throttled
// Dataverse request: code when set, otherwise one of the three at random.
func (s *Server) dataverseThrottle(code string) throttleError {
	if i := slices.IndexFunc(dataverseThrottles, func(t throttleError) bool { return t.code == code }); i >= 0 {
		return dataverseThrottles[i]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return dataverseThrottles[s.rng.IntN(len(dataverseThrottles))]
}

// roll decides the random faults of one request under the lock (the RNG is not goroutine safe).
func (s *Server) roll(op string) (rf RouteFaults, throttle bool, retryAfter int, fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rf = s.faults.forOp(op)
	if rf.ThrottleProbability > 0 && s.rng.Float64() < rf.ThrottleProbability {
		lo, hi := rf.RetryAfterMinSeconds, rf.RetryAfterMaxSeconds
		if lo == 0 && hi == 0 {
			lo, hi = 1, 1
		}
		if hi < lo {
			hi = lo
		}
		return rf, true, lo + s.rng.IntN(hi-lo+1), false
	}
	if rf.ServerErrorProbability > 0 && s.rng.Float64() < rf.ServerErrorProbability {
		return rf, false, 0, true
	}
	return rf, false, 0, false
}
