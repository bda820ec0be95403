package activities

// Check is one line of the validation checklist Marketo shows in
// "Validate Microsoft Dynamics Sync"; the operator reads Reason when it failed.
type Check struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Reason string `json:"reason,omitempty"`
}
