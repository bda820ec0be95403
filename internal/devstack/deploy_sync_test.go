package devstack

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/mktos2s/mktos2s/internal/devserver"
)

func readRepo(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../" + name)
	require.NoError(t, err)
	return string(b)
}

// make stack and docker-compose.yml run the same Temporal: the server and
// UI releases, the dynamic config file and the search-attribute script
// (which must register every attribute the dev server does).
func TestStackAndComposeStayInStep(t *testing.T) {
	mk := readRepo(t, "Makefile")
	version := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + `\s*:=\s*v(\S+)`).FindStringSubmatch(mk)
		require.NotNil(t, m, "Makefile sets %s", name)
		return m[1]
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(readRepo(t, "docker-compose.yml")), &compose))
	server := version("TEMPORAL_SERVER_VERSION")
	assert.Equal(t, "temporalio/auto-setup:"+server, compose.Services["temporal"].Image)
	assert.Equal(t, "temporalio/admin-tools:"+server, compose.Services["temporal-admin-tools"].Image)
	assert.Equal(t, "temporalio/ui:"+version("TEMPORAL_UI_VERSION"), compose.Services["temporal-ui"].Image)

	assert.Equal(t, "config/dynamicconfig/mktos2s.yaml", compose.Services["temporal"].Environment["DYNAMIC_CONFIG_FILE_PATH"])
	assert.Contains(t, compose.Services["temporal"].Volumes, "./deploy/dynamicconfig:/etc/temporal/config/dynamicconfig:ro")
	assert.Contains(t, compose.Services["temporal-admin-tools"].Volumes, "./deploy/register-search-attributes.sh:/register-search-attributes.sh:ro")

	script := readRepo(t, "deploy/register-search-attributes.sh")
	m := regexp.MustCompile(`(?m)^for name in ([^;]+);`).FindStringSubmatch(script)
	require.NotNil(t, m, "the script loops over the attribute names")
	assert.ElementsMatch(t, devserver.SearchAttributes, strings.Fields(m[1]),
		"deploy/register-search-attributes.sh (docker-compose and make stack) and internal/devserver.SearchAttributes (the dev server) register the same attributes")
}
