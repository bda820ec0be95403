package custody

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mktos2s/mktos2s/internal/codec"
)

const secret = "Xfs~4f.very-secret-value_1234567890"

func ring(t testing.TB, active string, ids ...string) *Keyring {
	t.Helper()
	keys := map[string][]byte{}
	for i, id := range ids {
		keys[id] = bytes.Repeat([]byte{byte(i + 1)}, codec.KeySize)
	}
	k, err := New(keys, active)
	require.NoError(t, err)
	return k
}

func TestSealOpenRoundTripAndJSONShape(t *testing.T) {
	k := ring(t, "c1", "c1")
	s, err := k.Seal(secret)
	require.NoError(t, err)
	assert.Equal(t, "c1", s.KeyID)

	b, err := json.Marshal(struct {
		ClientSecret Sealed `json:"clientSecret"`
	}{s})
	require.NoError(t, err)
	assert.NotContains(t, string(b), secret)
	var shape map[string]map[string]string
	require.NoError(t, json.Unmarshal(b, &shape))
	assert.Equal(t, []string{"keyId", "sealed"}, sortedKeys(shape["clientSecret"]), "the contract's JSON shape (C2)")

	var back struct {
		ClientSecret Sealed `json:"clientSecret"`
	}
	require.NoError(t, json.Unmarshal(b, &back))
	got, err := k.Open(back.ClientSecret)
	require.NoError(t, err)
	assert.Equal(t, secret, got)

	s2, err := k.Seal(secret)
	require.NoError(t, err)
	assert.NotEqual(t, s.Ciphertext, s2.Ciphertext, "a fresh nonce every time")
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	if len(out) == 2 && out[0] > out[1] {
		out[0], out[1] = out[1], out[0]
	}
	return out
}

func TestRotation(t *testing.T) {
	old := ring(t, "c1", "c1")
	s, err := old.Seal(secret)
	require.NoError(t, err)

	rotated := ring(t, "c2", "c1", "c2") // same bytes for c1: index 0
	got, err := rotated.Open(s)
	require.NoError(t, err, "an older key still opens")
	assert.Equal(t, secret, got)

	moved, err := rotated.Reseal(s)
	require.NoError(t, err)
	assert.Equal(t, "c2", moved.KeyID)
	got, err = rotated.Open(moved)
	require.NoError(t, err)
	assert.Equal(t, secret, got)

	_, err = old.Open(moved)
	assert.ErrorIs(t, err, ErrUnknownKey)
}

func TestOpenRefusesTamperingAndWrongKeys(t *testing.T) {
	k := ring(t, "c1", "c1")
	s, err := k.Seal(secret)
	require.NoError(t, err)

	other, err := New(map[string][]byte{"c1": bytes.Repeat([]byte{9}, codec.KeySize)}, "c1")
	require.NoError(t, err)
	_, err = other.Open(s)
	assert.ErrorIs(t, err, ErrTampered, "another key under the same ID")

	moved := s
	moved.KeyID = "c2"
	k2 := ring(t, "c1", "c1", "c2")
	_, err = k2.Open(moved)
	assert.ErrorIs(t, err, ErrTampered, "the key ID is authenticated")

	flipped := []byte(s.Ciphertext)
	flipped[len(flipped)/2] ^= 1
	_, err = k.Open(Sealed{Ciphertext: string(flipped), KeyID: "c1"})
	assert.Error(t, err)

	var nilRing *Keyring
	_, err = nilRing.Open(s)
	assert.ErrorIs(t, err, ErrNoKey, "the codec endpoint holds no custody key")
	_, err = nilRing.Seal(secret)
	assert.ErrorIs(t, err, ErrNoKey)
	_, err = k.Open(Sealed{})
	assert.Error(t, err)
	_, err = k.Seal("")
	assert.Error(t, err)
}

// Histories recorded before sealing carry the secret as a plain string.
func TestLegacyPlainString(t *testing.T) {
	var v struct {
		ClientSecret Sealed `json:"clientSecret"`
	}
	require.NoError(t, json.Unmarshal([]byte(`{"clientSecret":"`+secret+`"}`), &v))
	assert.True(t, v.ClientSecret.Legacy())
	var nilRing *Keyring
	got, err := nilRing.Open(v.ClientSecret)
	require.NoError(t, err)
	assert.Equal(t, secret, got)

	b, err := json.Marshal(v)
	require.NoError(t, err)
	assert.JSONEq(t, `{"clientSecret":"`+secret+`"}`, string(b), "a legacy value travels on as it was recorded")

	k := ring(t, "c1", "c1")
	sealed, err := k.Reseal(v.ClientSecret)
	require.NoError(t, err)
	assert.False(t, sealed.Legacy())
	b, err = json.Marshal(sealed)
	require.NoError(t, err)
	assert.NotContains(t, string(b), secret)

	require.NoError(t, json.Unmarshal([]byte(`{"clientSecret":""}`), &v))
	assert.True(t, v.ClientSecret.IsZero(), "an empty legacy string is no secret")
	require.NoError(t, json.Unmarshal([]byte(`{"clientSecret":null}`), &v))
	assert.True(t, v.ClientSecret.IsZero())
}

func TestNeverPrintsTheValue(t *testing.T) {
	legacy := Sealed{legacy: secret}
	k := ring(t, "c1", "c1")
	sealed, err := k.Seal(secret)
	require.NoError(t, err)
	for _, s := range []Sealed{legacy, sealed} {
		for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
			out := fmt.Sprintf(f, s)
			assert.NotContains(t, out, secret, f)
			assert.NotContains(t, out, sealed.Ciphertext, f)
		}
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "secret", s)
		assert.NotContains(t, buf.String(), secret)
	}
	// Inside a struct, slog's JSON handler marshals: a sealed value stays
	// sealed (a legacy one is the plain string it was recorded as, by design).
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "in", struct{ S Sealed }{sealed})
	assert.NotContains(t, buf.String(), secret)
}

func TestUnmarshalRejectsBadShapes(t *testing.T) {
	for _, in := range []string{`{"sealed":"abc"}`, `{"keyId":"c1"}`, `42`, `[1]`, `{"sealed":1,"keyId":"c1"}`} {
		var s Sealed
		err := json.Unmarshal([]byte(in), &s)
		assert.Error(t, err, in)
	}
	var s Sealed
	err := json.Unmarshal([]byte(`{"sealed":"`+secret+`","keyId":7}`), &s)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), secret, "errors never quote the input")
}

func FuzzUnmarshalOpen(f *testing.F) {
	k := ring(f, "c1", "c1")
	s, err := k.Seal(secret)
	require.NoError(f, err)
	b, _ := json.Marshal(s)
	f.Add(b)
	f.Add([]byte(`"legacy"`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"sealed":"AAAA","keyId":"c1"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var s Sealed
		if err := json.Unmarshal(in, &s); err != nil {
			return
		}
		plain, err := k.Open(s)
		if err == nil && !s.Legacy() && plain == "" {
			t.Fatalf("opened to an empty secret")
		}
		out, merr := json.Marshal(s)
		require.NoError(t, merr)
		var again Sealed
		require.NoError(t, json.Unmarshal(out, &again))
		assert.Equal(t, s, again)
		if err == nil && !strings.Contains(Placeholder, plain) {
			assert.NotContains(t, fmt.Sprint(s), plain, "printing never shows the value")
		}
	})
}
