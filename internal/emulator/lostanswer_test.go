package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawDo is e.do without failing the test on a transport error, which is
// what a reset or a stall looks like to the caller.
func (e *env) rawDo(ctx context.Context, method, rawURL, token string, body any) (int, error) {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, method, rawURL, bytes.NewReader(b))
	require.NoError(e.t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := e.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	return res.StatusCode, nil
}

func TestLostAnswerAppliesTheWriteThenLosesTheAnswer(t *testing.T) {
	for _, mode := range []string{LoseWith5xx, LoseByReset, LoseByStall} {
		t.Run(mode, func(t *testing.T) {
			e := start(t, nil)
			tok := e.provGraph(contosoID)
			e.s.LoseNextTenant(contosoID, "graph.createHRDPolicy", 1, mode)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			body := map[string]any{"displayName": "lost-" + mode, "definition": []string{`{"HomeRealmDiscoveryPolicy":{}}`}}
			status, err := e.rawDo(ctx, http.MethodPost, e.graph("/policies/homeRealmDiscoveryPolicies"), tok, body)
			switch mode {
			case LoseWith5xx:
				require.NoError(t, err)
				assert.Equal(t, http.StatusInternalServerError, status)
			default:
				require.Error(t, err, "the caller gets no answer")
			}
			// The write landed all the same.
			var names []string
			for _, p := range e.s.State().Tenants[0].HRDPolicies {
				names = append(names, p.DisplayName)
			}
			assert.Contains(t, names, "lost-"+mode)
			assert.Equal(t, 1, e.s.LostAnswers()["graph.createHRDPolicy"][mode])

			// The rule was used up: the next create is answered.
			body["displayName"] = "answered"
			r := e.do(http.MethodPost, e.graph("/policies/homeRealmDiscoveryPolicies"), tok, body)
			assert.Equal(t, http.StatusCreated, r.status, string(r.body))
		})
	}
}

func TestLostAnswerSparesRefusedWrites(t *testing.T) {
	e := start(t, nil)
	tok := e.provGraph(contosoID)
	e.s.LoseNextTenant(contosoID, "graph.createHRDPolicy", 1, LoseWith5xx)
	r := e.do(http.MethodPost, e.graph("/policies/homeRealmDiscoveryPolicies"), tok, map[string]any{"displayName": "x"})
	require.Equal(t, http.StatusBadRequest, r.status, "a refused write keeps its own answer")
	assert.Empty(t, e.s.LostAnswers())
	r = e.do(http.MethodPost, e.graph("/policies/homeRealmDiscoveryPolicies"), tok,
		map[string]any{"displayName": "x", "definition": []string{`{"HomeRealmDiscoveryPolicy":{}}`}})
	assert.Equal(t, http.StatusInternalServerError, r.status, "the rule waits for a write that lands")
}

func TestLostAnswerProbabilityPerOperation(t *testing.T) {
	seed := DefaultSeed()
	seed.Faults.Routes = map[string]RouteFaults{"graph.createHRDPolicy": {LostAnswerProbability: 1, LostAnswerMode: LoseWith5xx}}
	e := start(t, seed)
	tok := e.provGraph(contosoID)
	for range 3 {
		r := e.do(http.MethodPost, e.graph("/policies/homeRealmDiscoveryPolicies"), tok,
			map[string]any{"displayName": "p", "definition": []string{`{"HomeRealmDiscoveryPolicy":{}}`}})
		assert.Equal(t, http.StatusInternalServerError, r.status)
	}
	assert.Len(t, e.s.State().Tenants[0].HRDPolicies, 3)
	assert.Equal(t, map[string]map[string]int{"graph.createHRDPolicy": {LoseWith5xx: 3}}, e.s.LostAnswers())
	assert.Equal(t, http.StatusOK, e.do(http.MethodGet, e.graph("/policies/homeRealmDiscoveryPolicies"), tok, nil).status,
		"reads are never lost")

	bad := seed.Faults
	bad.Routes = map[string]RouteFaults{"x": {LostAnswerMode: "drop"}}
	assert.Error(t, bad.validate())
}
