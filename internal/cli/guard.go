package cli

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/internal/lifecycle"
)

// offboardedAfter is lifecycle.OffboardedAfter for the target.
func offboardedAfter(ctx context.Context, c client.Client, t target, since time.Time) (time.Time, bool, error) {
	return lifecycle.OffboardedAfter(ctx, c, t.tenantID, t.orgHost(), since)
}

// errOffboarded says that what a command would show or change was removed
// by an offboarding.
func errOffboarded(t target, at time.Time, what string) error {
	return fmt.Errorf("tenant %s, org %s was offboarded at %s: its app, client secrets and application user were removed and its secret rotation stopped, so %s; "+
		"to onboard it again run `starter start --tenant-id %s --org-url %s`",
		t.tenantID, t.orgHost(), at.UTC().Format(time.RFC3339), what, t.tenantID, t.orgURL)
}
