package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/mktos2s/mktos2s/internal/config"
)

// compose is the part of docker-compose.yml the checks read.
type compose struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Entrypoint  []string          `yaml:"entrypoint"`
		Environment map[string]string `yaml:"environment"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
}

// No Docker engine runs here, so the compose file is checked for what can
// drift silently: every MKTOS2S_* variable must be a real config key.
func TestComposeUsesRealConfigKeys(t *testing.T) {
	raw, err := os.ReadFile("../docker-compose.yml")
	require.NoError(t, err)
	var c compose
	require.NoError(t, yaml.Unmarshal(raw, &c))

	known := map[string]bool{}
	for _, k := range config.Keys() {
		known[k.Env()] = true
	}
	seen := 0
	for name, svc := range c.Services {
		for env := range svc.Environment {
			if !strings.HasPrefix(env, config.EnvPrefix+"_") {
				continue
			}
			seen++
			assert.True(t, known[env], "service %s sets %s, which is not a config key", name, env)
		}
	}
	assert.Greater(t, seen, 10, "the compose file should configure the product through MKTOS2S_* variables")

	worker := c.Services["worker"]
	for _, need := range []string{"MKTOS2S_TEMPORAL_ADDRESS", "MKTOS2S_CODEC_KEYS", "MKTOS2S_CUSTODY_KEYS", "MKTOS2S_MICROSOFT_PROVISIONER_CLIENTID"} {
		assert.Contains(t, worker.Environment, need, "the worker refuses to start without it")
	}
	codecSrv := c.Services["codec-server"]
	// Two keys, two audiences: the codec endpoint serves the UI and must never open the secret.
	assert.NotContains(t, codecSrv.Environment, "MKTOS2S_CUSTODY_KEYS", "the codec endpoint must not hold the custody key")
	assert.NotContains(t, c.Services["consent-callback"].Environment, "MKTOS2S_CUSTODY_KEYS")
	assert.Contains(t, c.Services["starter"].Environment, "MKTOS2S_CUSTODY_KEYS", "the operator's starter reveals")
	assert.Equal(t, []string{"/usr/local/bin/starter", "codec-server"}, codecSrv.Entrypoint)
	assert.Contains(t, codecSrv.Environment, "MKTOS2S_CODECSERVER_TOKEN")
	ui := c.Services["temporal-ui"]
	assert.NotEmpty(t, ui.Environment["TEMPORAL_CODEC_ENDPOINT"])
	// The UI's origin is the one the codec endpoint allows (inherited through the YAML merge key).
	assert.NotEmpty(t, codecSrv.Environment["MKTOS2S_CODECSERVER_CORSORIGIN"])
	assert.Equal(t, ui.Environment["TEMPORAL_CORS_ORIGINS"], codecSrv.Environment["MKTOS2S_CODECSERVER_CORSORIGIN"])

	// The callback verifies what the worker signs: both get the same key.
	callback := c.Services["consent-callback"]
	assert.Equal(t, []string{"/usr/local/bin/starter", "serve"}, callback.Entrypoint)
	assert.NotEmpty(t, callback.Environment["MKTOS2S_CONSENT_CALLBACKLISTEN"])
	assert.Equal(t, worker.Environment["MKTOS2S_CONSENT_CALLBACKKEY"], callback.Environment["MKTOS2S_CONSENT_CALLBACKKEY"])
	assert.Contains(t, worker.Environment["MKTOS2S_CONSENT_CALLBACKKEY"], "${MKTOS2S_CONSENT_CALLBACKKEY")

	// Only the worker calls Microsoft: the containers that face browsers hold
	// no provisioner credential.
	for _, name := range []string{"codec-server", "consent-callback"} {
		for _, secret := range []string{"MKTOS2S_MICROSOFT_PROVISIONER_CLIENTSECRET", "MKTOS2S_MICROSOFT_PROVISIONER_CERTIFICATEFILE"} {
			assert.NotContains(t, c.Services[name].Environment, secret, "%s gets the provisioner's credential", name)
		}
	}
	assert.Contains(t, worker.Environment, "MKTOS2S_MICROSOFT_PROVISIONER_CLIENTSECRET")
	assert.NotContains(t, codecSrv.Environment, "MKTOS2S_CONSENT_CALLBACKKEY", "the codec endpoint cannot sign consent links")

	names := make([]string, 0, len(c.Services))
	for n := range c.Services {
		names = append(names, n)
	}
	for _, want := range []string{"postgresql", "temporal", "temporal-admin-tools", "temporal-ui", "worker", "codec-server"} {
		assert.True(t, slices.Contains(names, want), "service %s", want)
	}
	assert.Contains(t, c.Services["temporal"].Environment["DB"], "postgres")
	// The auto-setup image ships the temporal CLI, not tctl: a healthcheck
	// naming a missing binary never passes and nothing that waits for it starts.
	health := c.Services["temporal"].Healthcheck.Test
	assert.Equal(t, []string{"CMD", "temporal", "operator", "cluster", "health"}, health[:min(5, len(health))])
	assert.NotContains(t, strings.Join(health, " "), "tctl")
}
