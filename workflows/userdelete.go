package workflows

import (
	"strings"

	"go.temporal.io/sdk/workflow"

	"github.com/mktos2s/mktos2s/activities"
)

// changeDeleteUserAfterApp: an application user that Dataverse would not
// delete while its Entra app existed is deleted once the app's own undo has
// run. Before it, such a user stayed disabled and without roles, and a later
// offboarding could not find it (it looks users up through the app).
const changeDeleteUserAfterApp = "delete-user-after-app"

// DeletedAfterApp starts the note of an application user that was deleted
// on the second try, once its app was gone.
const DeletedAfterApp = "deleted once its app was gone"

// refusedUserDelete tells whether an undo outcome is the application user
// left "disabled, not deleted" (activities.RemoveApplicationUser).
func refusedUserDelete(undo, note string) bool {
	return undo == activityName(a.RemoveApplicationUser) && strings.HasPrefix(note, activities.DisabledNotDeleted)
}

// deleteUserAfterApp repeats RemoveApplicationUser with the same input: the
// refusal's cause (0x80048359, the app still exists in Entra) is gone, so
// Dataverse deletes the disabled user now. It returns the note to record:
// DeletedAfterApp when it was deleted, the undo's own note when Dataverse
// still refused (the user stays disabled without roles, the defined end
// state), and "" when the run predates this change or the retry failed
// (then the first note stands).
func deleteUserAfterApp(ctx workflow.Context, in any) string {
	if workflow.GetVersion(ctx, changeDeleteUserAfterApp, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return ""
	}
	var res activities.UndoResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, undoOptions()), a.RemoveApplicationUser, in).Get(ctx, &res); err != nil {
		workflow.GetLogger(ctx).Warn("deleting the disabled application user after its app failed; it stays disabled without roles", "error", err)
		return ""
	}
	if res.Note != "" {
		return res.Note
	}
	return DeletedAfterApp + " (Dataverse had refused while the app existed in Entra)"
}
