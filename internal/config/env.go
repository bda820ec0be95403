package config

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
)

// ToolVariables are MKTOS2S_* variables read by the build and the tests,
// not by the configuration; they are not reported as unknown.
var ToolVariables = []string{"MKTOS2S_TEMPORAL_BIN", "MKTOS2S_RECORD_HISTORY", "MKTOS2S_CHROMIUM", "MKTOS2S_BROWSER_LEAKY_CODEC"}

// unknownEnv returns the MKTOS2S_* variables of environ that are neither a
// key's variable nor one of extra (the command-line flags' variables) nor a
// tool variable: most likely typos (MKTOS2S_TEMPORAL_ADRESS), which would
// otherwise be ignored without a word.
func unknownEnv(environ, extra []string) []string {
	known := map[string]bool{}
	for _, k := range Keys() {
		known[k.Env()] = true
	}
	for _, n := range append(slices.Clone(ToolVariables), extra...) {
		known[n] = true
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, EnvPrefix+"_") && !known[name] {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// envFix says what a misspelt variable probably meant.
func envFix(name string, extra []string) string {
	best, bestKey, dist := "", "", 4 // more than 3 edits apart is no suggestion
	for _, k := range Keys() {
		if d := editDistance(name, k.Env()); d < dist {
			best, bestKey, dist = k.Env(), k.Name, d
		}
	}
	for _, n := range extra {
		if d := editDistance(name, n); d < dist {
			best, bestKey, dist = n, "", d
		}
	}
	switch {
	case bestKey != "":
		return fmt.Sprintf("did you mean %s (%s)? Unset it or rename it", best, bestKey)
	case best != "":
		return fmt.Sprintf("did you mean %s? Unset it or rename it", best)
	}
	return "no configuration key reads it; unset it, or see the README's configuration table for the variables"
}

// editDistance is the Levenshtein distance; the names are short, so the
// quadratic table is fine, and no dependency is worth it.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// unparsable checks every duration, number and boolean key before decoding,
// so a value such as "10 minutes" is reported with its key, its variable
// and the fix instead of the decoder's "time: unknown unit".
func unparsable(v *viper.Viper) problems {
	var p problems
	for _, k := range Keys() {
		raw, ok := v.Get(k.Name).(string)
		if !ok {
			continue
		}
		s := strings.TrimSpace(raw)
		switch k.Default.(type) {
		case time.Duration:
			if _, err := time.ParseDuration(s); err != nil {
				p.add(k.Name, "%q is not a duration; write it like 90s, 10m or 1h30m (units ms, s, m, h; no spaces)", raw)
			}
		case int:
			if _, err := strconv.Atoi(s); err != nil {
				p.add(k.Name, "%q is not a whole number; write digits only, e.g. %d", raw, k.Default)
			}
		case bool:
			if _, err := strconv.ParseBool(s); err != nil {
				p.add(k.Name, "%q is not true or false", raw)
			}
		}
	}
	return p
}

func environ(o Options) []string {
	if o.Environ != nil {
		return o.Environ
	}
	return os.Environ()
}
