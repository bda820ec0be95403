package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mktos2s/mktos2s/internal/emulator"
	"github.com/mktos2s/mktos2s/workflows"
)

// Kinds of onboarding and what each must end as.
const (
	kindGranted    = "granted"
	kindDenied     = "denied"
	kindPermission = "permission-error"
)

// onboarding is one tenant of the run.
type onboarding struct {
	Kind      string
	TenantID  string
	OrgHost   string
	Federated bool
	FailOp    string // kindPermission: the emulator operation answered with 403
	FailCode  string // and the error code it carries
	// Held (cluster mode): its consent is granted only after the full
	// restart of the stack, so it waits through it.
	Held bool
}

// failStep is the step a compensated onboarding must fail at; failing
// earlier (say, preflight giving up under the throttling) would leave the
// undo path the run means to prove untested.
func (b onboarding) failStep() string {
	switch b.Kind {
	case kindDenied:
		return workflows.StepAwaitingAdminConsent
	case kindPermission:
		return map[string]string{
			"graph.addPassword":             workflows.StepAddClientSecret,
			"dataverse.createSystemUser":    workflows.StepCreateApplicationUser,
			"dataverse.associateRole":       workflows.StepAssignSecurityRole,
			"dataverse.updateMarketoConfig": workflows.StepConfigureMarketoSolution,
			"dataverse.publishAllXml":       workflows.StepPublishCustomizations,
		}[b.FailOp]
	}
	return ""
}

func (b onboarding) expected() string {
	switch b.Kind {
	case kindGranted:
		return "completed+validated"
	case kindPermission:
		return "compensated at " + b.failStep() + " (403 " + b.FailOp + ")"
	}
	return "compensated at " + b.failStep() + " (denied)"
}

// outcome is how a workflow ended, seen through the codec client.
type outcome struct {
	Status         string // completed, failed, cancelled, terminated, timed-out, unknown
	Validated      bool   // completed and every validation check passed
	FailedStep     string
	Reason         string
	CompensationOK bool // every undo succeeded
	Undos          int
	Err            string // why the outcome could not be read
}

func (o outcome) String() string {
	switch o.Status {
	case "completed":
		if o.Validated {
			return "completed+validated"
		}
		return "completed, validation NOT passed"
	case "failed", "cancelled":
		s := o.Status + " at " + o.FailedStep
		if o.CompensationOK {
			return s + fmt.Sprintf(", %d undone", o.Undos)
		}
		return s + ", compensation FAILED"
	case "":
		return "unknown: " + o.Err
	}
	return o.Status
}

// row is one line of the final table.
type row struct {
	Tenant, Expected, Actual string
	Apps, SPs, LiveSecrets   int
	UsersWithRole, Users     int
	HRD, Grants              int
	Problems                 []string
}

func (r row) verdict() string {
	if len(r.Problems) == 0 {
		return "OK"
	}
	return "FAIL: " + strings.Join(r.Problems, "; ")
}

// evaluate compares every onboarding's outcome and its tenant's objects in
// the emulator with what it must be: a completed one holds exactly one app,
// service principal, live secret and application user with the role; a
// compensated one holds nothing at all.
func evaluate(obs []onboarding, outs map[string]outcome, st emulator.State, seed *emulator.Seed, roleName string, now time.Time) []row {
	seededUsers := map[string]map[string]bool{}
	for _, o := range seed.Orgs {
		m := map[string]bool{}
		for _, u := range o.Users {
			m[strings.ToLower(u.ApplicationID)] = true
		}
		seededUsers[strings.ToLower(o.Host)] = m
	}
	var rows []row
	for _, ob := range obs {
		r := row{Tenant: ob.TenantID, Expected: ob.expected()}
		out, ok := outs[ob.TenantID]
		r.Actual = out.String()
		bad := func(format string, a ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, a...)) }
		if !ok {
			r.Actual = "never ended"
			bad("no outcome")
		}
		ti := slices.IndexFunc(st.Tenants, func(t emulator.TenantState) bool { return strings.EqualFold(t.ID, ob.TenantID) })
		oi := slices.IndexFunc(st.Orgs, func(o emulator.OrgState) bool { return strings.EqualFold(o.Host, ob.OrgHost) })
		if ti < 0 || oi < 0 {
			bad("tenant or org missing from the emulator")
			rows = append(rows, r)
			continue
		}
		ts, org := st.Tenants[ti], st.Orgs[oi]
		appIDs := map[string]bool{}
		for _, a := range ts.Applications {
			if a.Seeded {
				continue
			}
			r.Apps++
			appIDs[strings.ToLower(a.AppID)] = true
			for _, p := range a.PasswordCredentials {
				if p.EndDateTime.After(now) {
					r.LiveSecrets++
				}
			}
		}
		spIDs := map[string]bool{}
		for _, sp := range ts.ServicePrincipals {
			if sp.Owner != "" {
				r.SPs++
				spIDs[sp.ID] = true
			}
		}
		for _, g := range ts.PermissionGrants {
			if spIDs[g.ClientID] {
				r.Grants++
			}
		}
		r.HRD = len(ts.HRDPolicies)
		var userID string
		for _, u := range org.Users {
			if seededUsers[strings.ToLower(org.Host)][strings.ToLower(u.ApplicationID)] {
				continue
			}
			r.Users++
			if !u.Disabled && slices.Contains(u.RoleNames, roleName) {
				r.UsersWithRole++
				userID = u.ID
			}
		}
		configUser := ""
		for _, c := range org.MarketoConfigs {
			if c.Name == "Default" {
				configUser = c.UserID
			}
		}

		if ob.Kind == kindGranted {
			if !ok || out.Status != "completed" || !out.Validated {
				bad("should have completed and validated")
			}
			for name, n := range map[string]int{"apps": r.Apps, "service principals": r.SPs, "live secrets": r.LiveSecrets,
				"app users with the role": r.UsersWithRole, "app users": r.Users} {
				if n != 1 {
					bad("%d %s, want exactly 1", n, name)
				}
			}
			if want := map[bool]int{true: 1, false: 0}[ob.Federated]; r.HRD != want {
				bad("%d HRD policies, want %d", r.HRD, want)
			}
			if userID != "" && !strings.EqualFold(configUser, userID) {
				bad("Marketo Config user is %q, want the app user %s", configUser, userID)
			}
		} else {
			if !ok || (out.Status != "failed" && out.Status != "cancelled") || !out.CompensationOK {
				bad("should have failed and been compensated")
			} else if want := ob.failStep(); out.FailedStep != want {
				bad("failed at %s, want %s (%s)", out.FailedStep, want, out.Reason)
			}
			for name, n := range map[string]int{"apps": r.Apps, "service principals": r.SPs, "live secrets": r.LiveSecrets,
				"app users": r.Users, "HRD policies": r.HRD, "consent grants": r.Grants} {
				if n != 0 {
					bad("%d %s left behind", n, name)
				}
			}
			if configUser != "" {
				bad("Marketo Config still points at user %s", configUser)
			}
		}
		for _, v := range secretOrderViolations(ts.PasswordEvents) {
			bad("%s", v)
		}
		slices.Sort(r.Problems)
		rows = append(rows, r)
	}
	return rows
}

// secretOrderViolations replays a tenant's password audit log and reports
// every secret added while an earlier one with the same display name (the
// onboarding's tag) was still live on the same application.
func secretOrderViolations(events []emulator.PasswordEvent) []string {
	type key struct{ app, name string }
	live := map[key]map[string]bool{} // tag -> live key IDs
	var out []string
	for _, ev := range events {
		k := key{ev.AppObjectID, ev.DisplayName}
		switch ev.Action {
		case emulator.PasswordAdded:
			if n := len(live[k]); n > 0 && ev.DisplayName != "" {
				out = append(out, fmt.Sprintf("secret %s added at %s while %d earlier secret(s) tagged %q were live",
					ev.KeyID, ev.Time.Format(time.TimeOnly), n, ev.DisplayName))
			}
			if live[k] == nil {
				live[k] = map[string]bool{}
			}
			live[k][ev.KeyID] = true
		case emulator.PasswordRemoved, emulator.PasswordAppDeleted:
			delete(live[k], ev.KeyID)
		}
	}
	return out
}

func printTable(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tEXPECTED\tACTUAL\tAPPS\tSPS\tLIVE SECRETS\tAPP USERS WITH ROLE\tHRD\tVERDICT")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", r.Tenant, r.Expected, r.Actual,
			r.Apps, r.SPs, r.LiveSecrets, r.UsersWithRole, r.HRD, r.verdict())
	}
	_ = tw.Flush()
}

// stepOf names the step for the table, "" when unknown.
func stepOf(rep workflows.FailureReport) string {
	if rep.FailedStep == "" {
		return "?"
	}
	return rep.FailedStep
}
