package devstack

import (
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"github.com/mktos2s/mktos2s/internal/config"
)

// clientConfigName is the file, in the emulator's data directory, holding
// what a second terminal's starter needs to reach the running stack.
const clientConfigName = "starter.yaml"

// writeClientConfig writes the configuration the stack runs with, as far as
// a client needs it (Temporal address, codec keys, the UI's origin, the
// emulator's URLs and CA), so `starter --config FILE …` in another terminal
// decrypts the stack's payloads and every printed hint works as printed. The
// codec keys are the demo's (public, or generated for this process only);
// the file is 0600 and removed when the stack stops. It carries no
// provisioner secret and no consent callback key: clients need neither.
func writeClientConfig(dir string, cfg config.Config) (string, error) {
	m := cfg.Microsoft
	doc := map[string]any{
		"temporal": map[string]any{"address": cfg.Temporal.Address, "namespace": cfg.Temporal.Namespace},
		"codec":    map[string]any{"keys": cfg.Codec.Keys, "activeKeyId": cfg.Codec.ActiveKeyID},
		// The operator's starter holds the custody key for `credentials --reveal`
		// (the demo's, public); the stack's codec endpoint never does.
		"custody": map[string]any{"keys": cfg.Custody.Keys, "activeKeyId": cfg.Custody.ActiveKeyID},
		"microsoft": map[string]any{
			"authorityHost": m.AuthorityHost, "graphBaseURL": m.GraphBaseURL, "caFile": m.CAFile,
			"dialOverrides": m.DialOverrides, "allowedOrgSuffixes": m.AllowedOrgSuffixes,
		},
		"codecServer": map[string]any{"corsOrigin": cfg.CodecServer.CORSOrigin},
		"consent":     map[string]any{"recheckInterval": cfg.Consent.RecheckInterval.String(), "stateTTL": cfg.Consent.StateTTL.String()},
		"log":         map[string]any{"level": "warn", "format": "text"},
	}
	body, err := yaml.Marshal(doc)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path, err := filepath.Abs(filepath.Join(dir, clientConfigName))
	if err != nil {
		return "", err
	}
	header := "# Written by devstack for other terminals while the stack runs; removed when it stops.\n"
	if err := os.WriteFile(path, append([]byte(header), body...), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}
