package workflows

// RotationInputFor is the input of the SecretRotation that follows a
// completed onboarding: the onboarding's own settings (secret lifetime,
// role, solution, rotation settings) carry over. The onboarding's child and
// every client that starts a rotation build it here, so they cannot
// disagree.
func RotationInputFor(in OnboardingInput, res OnboardingResult) RotationInput {
	settings := RotationSettings{}
	if in.Rotation != nil {
		settings = *in.Rotation
	}
	return RotationInput{
		TenantID: in.TenantID, OrgURL: in.OrgURL, AppObjectID: res.Resources.AppObjectID, AppID: res.ClientID,
		SystemUserID: res.Resources.SystemUserID, Username: res.Username,
		Current:              RotationSecret{KeyID: res.Resources.SecretKeyID, Value: res.ClientSecret, ExpiresAt: res.SecretExpiresAt},
		SecretLifetimeMonths: in.SecretLifetimeMonths, Settings: settings,
		RoleName: in.SecurityRoleName, SolutionName: in.SolutionName, MinSolutionVersion: in.MinSolutionVersion,
		KeyVault: in.KeyVault,
	}
}
