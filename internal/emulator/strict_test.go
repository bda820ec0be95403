package emulator

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Property names are case-sensitive at every depth (Dataverse: "Property
// names are case sensitive", web-api-client-errors; Graph the same), while
// encoding/json matches any casing: a nested property in the wrong case
// was accepted before.
func TestDecodeExactIsCaseSensitiveAtEveryDepth(t *testing.T) {
	type label struct {
		Label        string `json:"Label"`
		LanguageCode int    `json:"LanguageCode"`
	}
	type body struct {
		Name    string `json:"name"`
		Options *struct {
			Labels []label          `json:"LocalizedLabels"`
			Extra  json.RawMessage  `json:"Extra"`
			Free   map[string]any   `json:"Free"`
			Nested *struct{ A int } `json:"Nested"`
		} `json:"Options"`
	}
	tests := []struct {
		in, prop string
		ok       bool
	}{
		{in: `{"name":"x","Options":{"LocalizedLabels":[{"Label":"a","LanguageCode":1033}],"Extra":{"Any":1},"Free":{"Whatever":1},"Nested":{"A":1}}}`, ok: true},
		{in: `{"Name":"x"}`, prop: "Name"},
		{in: `{"name":"x","options":{}}`, prop: "options"},
		{in: `{"Options":{"localizedLabels":[]}}`, prop: "localizedLabels"},
		{in: `{"Options":{"LocalizedLabels":[{"Label":"a","languageCode":1033}]}}`, prop: "languageCode"},
		{in: `{"Options":{"LocalizedLabels":[{"Label":"a","Unknown":1}]}}`, prop: "Unknown"},
		{in: `{"Options":{"Nested":{"a":1}}}`, prop: "a"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var v body
			prop, err := decodeExact(strings.NewReader(tt.in), &v)
			if tt.ok {
				assert.NoError(t, err)
				assert.Equal(t, 1033, v.Options.Labels[0].LanguageCode)
				return
			}
			assert.Error(t, err)
			assert.Equal(t, tt.prop, prop)
		})
	}
	_, err := decodeExact(strings.NewReader(`{"name":1}`), &body{})
	assert.Error(t, err, "a value of the wrong type is still refused")
	_, err = decodeExact(strings.NewReader(`null`), &body{})
	assert.Error(t, err, "a body is an object")
}

// FuzzDecodeExact: a body from a client never panics the decoder, and one it
// accepts names no property the target does not declare in that spelling.
func FuzzDecodeExact(f *testing.F) {
	f.Add(`{"name":"x","Options":{"LocalizedLabels":[{"Label":"a","LanguageCode":1033}]}}`)
	f.Add(`{"Options":{"LocalizedLabels":[{"label":"a"}]}}`)
	f.Add(`[]`)
	f.Add(``)
	f.Add(`null`)
	f.Fuzz(func(t *testing.T, in string) {
		var v struct {
			Name    string `json:"name"`
			Options *struct {
				Labels []struct {
					Label string `json:"Label"`
				} `json:"LocalizedLabels"`
			} `json:"Options"`
		}
		prop, err := decodeExact(strings.NewReader(in), &v)
		if err == nil && prop != "" {
			t.Fatalf("accepted %q but named %q", in, prop)
		}
		if err != nil {
			return
		}
		var top map[string]json.RawMessage
		if json.Unmarshal([]byte(in), &top) != nil || top == nil {
			t.Fatalf("accepted a body that is no JSON object: %q", in)
		}
		for k := range top {
			if k != "name" && k != "Options" {
				t.Fatalf("accepted the undeclared property %q", k)
			}
		}
	})
}
