package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestPrintLostNamesEveryCreateThatLostNothing(t *testing.T) {
	lost := map[string]map[string]int{}
	reached := map[string]bool{}
	for _, op := range createOps {
		lost[op] = map[string]int{"5xx": 1}
		reached[op] = true
	}
	lost["graph.addPassword"] = nil
	lost["graph.removePassword"] = map[string]int{"reset": 2}
	delete(reached, "graph.createHRDPolicy")
	lost["graph.createHRDPolicy"] = nil

	var out bytes.Buffer
	v := printLost(&out, lost, reached)
	assert.Equal(t, []string{"no lost-answer fault was injected on graph.addPassword: the run does not prove it idempotent"}, v,
		"an operation no onboarding reached is not required")
	assert.Contains(t, out.String(), "graph.removePassword")
	assert.Regexp(t, `graph\.upsertApplication\s+1\s+0\s+0\s+1`, out.String())
}
