package config

import (
	"bytes"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
)

// publicValue is a secret published in this repository for the emulator and
// the tests. It protects nothing (anyone can read it here), so it is refused
// unless every Microsoft endpoint is a loopback host, that is, the emulator.
type publicValue struct {
	where string // where it is published, for the error message
	text  string // the value as written (tokens, secrets)
	key   string // base64 of a key, compared decoded (any base64 alphabet)
}

func publicValues() []publicValue {
	return []publicValue{
		{where: "config/mktos2s.emulator.yaml codec.keys", key: "URSzuJJ7wnuLe3oK6l1/7B+E0MkqK/PWrhVR0DDnteY="},
		{where: "internal/testenv/testcodec", key: "T9t5ks8cLjBLkizUNsMONIwePR78Op+yUs4L6tzArx4="},
		{where: "config/mktos2s.emulator.yaml custody.keys", key: "6P0EwIAsyAz6v4xkwFJoNNYETpWDkpVpkO/pBEVBL3A="},
		{where: "internal/testenv/testcodec custody key", key: "sLfMrDNJqQf7hvuVt/oOhCNDEDM75gzvXqn8VjMKa5Q="},
		{where: "config/mktos2s.emulator.yaml consent.callbackKey", key: "JllP4EFQ7pw8UEtmlM8gKQu0Tv55Ku59xAlq/FZLLUU="},
		{where: "config/mktos2s.emulator.yaml codecServer.token", text: "demo-only-codec-token"},
		{where: "the emulator seed (config/emulator-seed.yaml)", text: "provisioner-demo-secret"},
	}
}

// publicKey says where a key (raw bytes) is published, "" when it is not.
func publicKey(raw []byte) string {
	for _, v := range publicValues() {
		if v.key == "" {
			continue
		}
		if pub, err := decodeBase64(v.key); err == nil && bytes.Equal(pub, raw) {
			return v.where
		}
	}
	return ""
}

// publicText says where a token or secret is published, "" when it is not.
func publicText(s string) string {
	s = strings.TrimSpace(s)
	for _, v := range publicValues() {
		if v.text != "" && v.text == s {
			return v.where
		}
	}
	return ""
}

// Sandboxed reports whether every Microsoft endpoint is on a loopback host
// (127.0.0.0/8, ::1, localhost or *.localhost): the emulator, never Microsoft.
func (m Microsoft) Sandboxed() bool {
	for _, raw := range []string{m.AuthorityHost, m.GraphBaseURL} {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return false
		}
		h := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
		if !isLoopbackHost(h) && !strings.HasSuffix(h, ".localhost") {
			return false
		}
	}
	return true
}

// validatePublicValues refuses, by key name, the repository's demo and test
// secrets when Microsoft is not the emulator: a worker started with the
// emulator's file but real Microsoft URLs would otherwise encrypt with a key,
// and sign consent links with a key, that anyone can read on GitHub.
func (c Config) validatePublicValues(p *problems) {
	if c.Microsoft.Sandboxed() {
		return
	}
	why := func(where string) string {
		return fmt.Sprintf("is the public value of %s, which anyone can read, so it is refused while microsoft.authorityHost (%s) or microsoft.graphBaseURL (%s) is not a loopback host",
			where, c.Microsoft.AuthorityHost, c.Microsoft.GraphBaseURL)
	}
	for _, id := range slices.Sorted(maps.Keys(c.Codec.Keys)) {
		if raw, err := decodeBase64(strings.TrimSpace(c.Codec.Keys[id])); err == nil {
			if where := publicKey(raw); where != "" {
				p.add("codec.keys", "the key %s %s; generate one with: openssl rand -base64 32", shownKeyID(id), why(where))
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(c.Custody.Keys)) {
		if raw, err := decodeBase64(strings.TrimSpace(c.Custody.Keys[id])); err == nil {
			if where := publicKey(raw); where != "" {
				p.add("custody.keys", "the key %s %s; generate one with: openssl rand -base64 32", shownKeyID(id), why(where))
			}
		}
	}
	if raw, problem := c.Consent.decodeCallbackKey(); problem == "" && raw != nil {
		if where := publicKey(raw); where != "" {
			p.add("consent.callbackKey", "%s; generate one with: openssl rand -base64 32", why(where))
		}
	}
	if where := publicText(c.CodecServer.Token); where != "" {
		p.add("codecServer.token", "%s; generate one with: openssl rand -base64 24 | tr '+/' '-_' | tr -d '='", why(where))
	}
	if where := publicText(c.Microsoft.Provisioner.ClientSecret); where != "" {
		p.add("microsoft.provisioner.clientSecret", "%s; use the secret of your provisioner app in Entra", why(where))
	}
}
