package emulator

import (
	"bytes"
	"maps"
	"net/http"
	"slices"
	"time"
)

// Lost answers: Microsoft applied the write, but the caller never learns
// it. A gateway answers 5xx after the backend committed, the connection
// drops before the response, or the response takes longer than the caller
// waits. Each mode leaves the object in place, so only a caller that finds
// its own earlier work before it writes again stays idempotent.
const (
	LoseWith5xx = "5xx"   // the write is applied, the answer is a 500
	LoseByReset = "reset" // the write is applied, the stream is reset (HTTP/2 RST_STREAM, HTTP/1.1 closed connection)
	LoseByStall = "stall" // the write is applied, the answer never comes: held until the caller gives up (or StallMs), then reset
)

var loseModes = []string{LoseWith5xx, LoseByReset, LoseByStall}

// defaultStall is how long a stall holds the answer when StallMs is 0: past
// any per-request timeout a client sets for a create.
const defaultStall = 2 * time.Minute

// lossRule is a pending LoseNextTenant.
type lossRule struct {
	remaining int // <0 = always
	mode      string
}

// LoseNextTenant makes the next times writes of op in tenantID (times<0:
// every one; 0: clear) apply and then lose their answer in mode (LoseWith5xx,
// LoseByReset, LoseByStall, or "" for one of them at random). A request the
// handler refuses (4xx) keeps its answer and does not use up the rule: only
// a write that landed can lose its answer.
func (s *Server) LoseNextTenant(tenantID, op string, times int, mode string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := tenantRuleKey(tenantID, op)
	if times == 0 {
		delete(s.loseNext, key)
		return
	}
	s.loseNext[key] = &lossRule{remaining: times, mode: mode}
}

// LostAnswers counts the answers lost so far per operation and mode, e.g.
// {"graph.addPassword": {"5xx": 2, "stall": 1}}.
func (s *Server) LostAnswers() map[string]map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]map[string]int, len(s.lost))
	for op, m := range s.lost {
		out[op] = maps.Clone(m)
	}
	return out
}

// pendingLoss decides whether this request's answer is to be lost if its
// write lands: a LoseNextTenant rule first, then the route's
// LostAnswerProbability. It consumes nothing; commitLoss does.
func (s *Server) pendingLoss(c *call) (mode string, rule bool, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, found := s.loseNext[tenantRuleKey(c.tenantID(), c.op)]; found {
		return s.pickMode(r.mode), true, true
	}
	rf := s.faults.forOp(c.op)
	if rf.LostAnswerProbability > 0 && s.rng.Float64() < rf.LostAnswerProbability {
		return s.pickMode(rf.LostAnswerMode), false, true
	}
	return "", false, false
}

// pickMode resolves "" to a random mode; called with s.mu held.
func (s *Server) pickMode(m string) string {
	if m != "" {
		return m
	}
	return loseModes[s.rng.IntN(len(loseModes))]
}

func (s *Server) commitLoss(c *call, mode string, rule bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rule {
		key := tenantRuleKey(c.tenantID(), c.op)
		if r := s.loseNext[key]; r != nil && r.remaining > 0 {
			r.remaining--
			if r.remaining == 0 {
				delete(s.loseNext, key)
			}
		}
	}
	if s.lost[c.op] == nil {
		s.lost[c.op] = map[string]int{}
	}
	s.lost[c.op][mode]++
}

// heldResponse keeps a handler's answer until serveHTTP knows whether it is
// delivered or lost.
type heldResponse struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (b *heldResponse) Header() http.Header { return b.h }

func (b *heldResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *heldResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

func (b *heldResponse) deliver(w http.ResponseWriter) {
	for k, v := range b.h {
		w.Header()[k] = v
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
}

// serveLosing runs the handler with its answer held. A refused request is
// answered as usual; a write that landed loses its answer in mode.
func (s *Server) serveLosing(w http.ResponseWriter, r *http.Request, svc service, c *call, rt route, mode string, rule bool) {
	held := &heldResponse{h: w.Header().Clone()}
	rt.handle(held, r, c)
	if held.status < 200 || held.status > 299 {
		held.deliver(w)
		return
	}
	s.commitLoss(c, mode, rule)
	s.log.Info("answer lost after the write was applied", "op", c.op, "mode", mode, "request-id", c.reqID)
	switch mode {
	case LoseByStall:
		s.mu.Lock()
		d := time.Duration(s.faults.forOp(c.op).StallMs) * time.Millisecond
		s.mu.Unlock()
		if d <= 0 {
			d = defaultStall
		}
		t := time.NewTimer(d)
		select {
		case <-r.Context().Done():
		case <-t.C:
		}
		t.Stop()
		panic(http.ErrAbortHandler)
	case LoseByReset:
		// net/http (and its HTTP/2 server) resets the stream without a
		// response and without logging a panic for ErrAbortHandler.
		panic(http.ErrAbortHandler)
	default:
		msg := map[service]string{
			svcGraph:     "generalException",
			svcDataverse: "0x80040216",
		}[svc]
		if msg == "" {
			msg = "server_error"
		}
		s.writeError(w, svc, c, http.StatusInternalServerError, msg, "An unexpected error occurred.")
	}
}

// validLoseMode reports whether m names a mode ("" = random).
func validLoseMode(m string) bool { return m == "" || slices.Contains(loseModes, m) }
