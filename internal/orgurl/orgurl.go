// Package orgurl is the one check of a Dynamics 365 org URL, used wherever
// one enters the product: the workflow inputs (whoever starts the workflow),
// the CLI, and the Dataverse client factory of the activities, which sends
// the provisioner's token to it. A URL that passes is https, names a DNS host
// (no IP literal, userinfo, backslash, %-encoding, trailing dot or non-ASCII
// lookalike dots) and, where an allow-list is given, ends with one of its
// suffixes.
package orgurl

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Where is the hint every problem ends with.
const Where = "use the Dynamics 365 environment URL, e.g. https://contoso.crm.dynamics.com (Power Platform admin center > Environments)"

// Problem returns what is wrong with raw as an org URL, phrased to follow
// the field name ("orgUrl is required; …"), or "" when it is well formed.
// It does not check the allow-list; see Check.
func Problem(raw string) string {
	_, problem := parse(raw)
	return problem
}

// Check parses raw and checks its host against allowedSuffixes (each
// starting with a dot, e.g. ".crm.dynamics.com"; none given: any host). It
// returns the lower-case host without port.
func Check(raw string, allowedSuffixes []string) (string, error) {
	host, problem := parse(raw)
	if problem != "" {
		return "", errors.New("orgUrl " + problem)
	}
	if len(allowedSuffixes) > 0 && !Allowed(host, allowedSuffixes) {
		return "", fmt.Errorf("orgUrl host %s is not a Dynamics 365 org host: it must end with %s (microsoft.allowedOrgSuffixes); %s",
			host, strings.Join(allowedSuffixes, ", "), Where)
	}
	return host, nil
}

// Allowed reports whether host (without port) ends with one of the
// suffixes and has a label of its own before it.
func Allowed(host string, suffixes []string) bool {
	host = strings.ToLower(host)
	for _, s := range suffixes {
		s = strings.ToLower(strings.TrimSpace(s))
		if strings.HasPrefix(s, ".") && len(host) > len(s) && strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

func parse(raw string) (host, problem string) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", "is required; " + Where
	}
	// Browsers read a backslash as a slash and undo %-encoding in hosts;
	// neither belongs in an org URL, so neither can disguise one.
	if strings.ContainsAny(raw, "\\%") {
		return "", "must not contain a backslash or %-encoding; " + Where
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "", "is not an absolute URL; " + Where
	}
	if u.Scheme != "https" {
		return "", "must use https; " + Where
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil || strings.Contains(raw, "@") {
		return "", "must be the bare org URL without path, query or credentials; " + Where
	}
	if p := u.Port(); p != "" || strings.HasSuffix(u.Host, ":") {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", "has an invalid port; " + Where
		}
	}
	host = strings.ToLower(u.Hostname())
	if problem := hostProblem(host); problem != "" {
		return "", problem + "; " + Where
	}
	return host, ""
}

// hostProblem accepts DNS names of ASCII letters, digits and hyphens only,
// which also refuses IP literals (an all-digit last label, or a colon).
func hostProblem(host string) string {
	if len(host) > 253 {
		return "has a host name longer than 253 characters"
	}
	labels := strings.Split(host, ".")
	if len(labels) < 2 {
		return "must name a host such as contoso.crm.dynamics.com"
	}
	for _, l := range labels {
		if l == "" {
			return "has an empty label in its host (two dots, or a trailing dot)"
		}
		if len(l) > 63 {
			return "has a host label longer than 63 characters"
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return "must have a host of ASCII letters, digits, hyphens and dots only (no IP address, no lookalike characters)"
			}
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "has a host label that starts or ends with a hyphen"
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "must name a host, not an IP address"
	}
	return ""
}
