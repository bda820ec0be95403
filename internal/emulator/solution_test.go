package emulator

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A new column joins an unmanaged solution only when the request names it
// (MSCRM.SolutionUniqueName); a managed or unknown solution is refused.
func TestColumnJoinsTheNamedUnmanagedSolution(t *testing.T) {
	seed := DefaultSeed()
	seed.Orgs[0].Solutions = append(seed.Orgs[0].Solutions, SeedSolution{UniqueName: "ContosoCustomizations", FriendlyName: "Contoso", Version: "1.0.0.0", Unmanaged: true})
	e := start(t, seed)
	dvTok := e.provDV(contosoID, contosoHost)
	post := func(schema, solution string) resp {
		hdr := []string{}
		if solution != "" {
			hdr = []string{"MSCRM.SolutionUniqueName", solution}
		}
		return e.do(http.MethodPost, e.dv(contosoHost, "/EntityDefinitions(LogicalName='lead')/Attributes"), dvTok, booleanColumn(schema, "Sync"), hdr...)
	}
	r := post("new_Managed", "MarketoLeadManagement")
	assert.Equal(t, http.StatusBadRequest, r.status, "Adobe's solution is managed: %s", r.body)
	r = post("new_Unknown", "NoSuchSolution")
	assert.Equal(t, http.StatusNotFound, r.status, string(r.body))
	require.Equal(t, http.StatusNoContent, post("new_InSolution", "ContosoCustomizations").status)
	require.Equal(t, http.StatusNoContent, post("new_DefaultOnly", "").status)

	var org OrgState
	for _, o := range e.s.State().Orgs {
		if o.Host == contosoHost {
			org = o
		}
	}
	assert.Equal(t, map[string][]string{"ContosoCustomizations": {"lead.new_insolution"}}, org.SolutionComponents)
	assert.Subset(t, org.Columns["lead"], []string{"new_insolution", "new_defaultonly"})
}
