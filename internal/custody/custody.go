// Package custody seals the onboarding's client secret before it enters any
// Temporal payload.
//
// Payloads are encrypted with the codec key (internal/codec), which the codec
// endpoint holds so the Temporal UI can show inputs, results and failures.
// Whoever can open the UI can therefore read every payload; the client
// secret must not be among what they read. It is sealed with a second key,
// the custody key, that only the worker and the operator's starter
// (`credentials --reveal`) hold: in a decoded payload the secret is
// {"sealed":"…","keyId":"…"}.
//
// Key IDs and rotation work as for the codec: the active key seals, every
// configured key opens.
package custody

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/mktos2s/mktos2s/internal/codec"
)

// ErrUnknownKey is returned when a value was sealed with a key that is not configured.
var ErrUnknownKey = errors.New("unknown custody key ID")

// ErrTampered is returned when a sealed value fails GCM authentication.
var ErrTampered = errors.New("sealed value authentication failed")

// ErrNoKey is returned by Open and Seal on a nil Keyring: this process was
// not given the custody key (the codec endpoint never is).
var ErrNoKey = errors.New("no custody key configured (custody.keys)")

// Placeholder is how a sealed value prints anywhere but JSON.
const Placeholder = "[sealed: reveal with starter credentials --reveal]"

// aadPrefix binds a ciphertext to its purpose and key ID: a codec payload
// or a value moved under another key ID does not open.
const aadPrefix = "mktos2s/custody/v1:"

// Sealed is a client secret sealed with the custody key. Its zero value is
// "no secret". It marshals as {"sealed":"<base64 nonce+ciphertext>","keyId":"<id>"}.
//
// UnmarshalJSON also accepts a plain JSON string: histories recorded before
// secrets were sealed carry the secret that way, and must still replay and
// reveal. Such a legacy value marshals back as the same string (workflow
// code cannot seal it: it has no key), and opens without a key.
type Sealed struct {
	Ciphertext string `json:"sealed"`
	KeyID      string `json:"keyId"`

	legacy string
}

// IsZero reports whether s holds no secret (used by `omitzero`).
func (s Sealed) IsZero() bool { return s.Ciphertext == "" && s.KeyID == "" && s.legacy == "" }

// Legacy reports whether s is a plain value recorded before sealing existed.
func (s Sealed) Legacy() bool { return s.legacy != "" }

type wire struct {
	Ciphertext string `json:"sealed"`
	KeyID      string `json:"keyId"`
}

// MarshalJSON writes the sealed form; a legacy value stays the plain string
// it was recorded as, and the zero value is null.
func (s Sealed) MarshalJSON() ([]byte, error) {
	switch {
	case s.legacy != "":
		return json.Marshal(s.legacy)
	case s.IsZero():
		return []byte("null"), nil
	}
	return json.Marshal(wire{s.Ciphertext, s.KeyID})
}

// UnmarshalJSON reads the sealed form, null, or a legacy plain string.
func (s *Sealed) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*s = Sealed{}
		return nil
	case len(b) > 0 && b[0] == '"':
		var plain string
		if err := json.Unmarshal(b, &plain); err != nil {
			return fmt.Errorf("custody: legacy secret: %w", err)
		}
		*s = Sealed{legacy: plain}
		return nil
	}
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		// Never quote the input: it may be a secret.
		return errors.New("custody: a sealed secret must be {\"sealed\":\"…\",\"keyId\":\"…\"}, null or a string")
	}
	if (w.Ciphertext == "") != (w.KeyID == "") {
		return errors.New("custody: a sealed secret needs both sealed and keyId")
	}
	*s = Sealed{Ciphertext: w.Ciphertext, KeyID: w.KeyID}
	return nil
}

// String never shows the value, so %v and %s are safe.
func (s Sealed) String() string {
	if s.IsZero() {
		return ""
	}
	return Placeholder
}

// GoString is String for %#v.
func (s Sealed) GoString() string { return s.String() }

// LogValue makes slog log the placeholder.
func (s Sealed) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Keyring seals with the active key and opens with any configured key.
// A nil *Keyring holds no key: Seal and Open fail with ErrNoKey.
type Keyring struct {
	active string
	aeads  map[string]cipher.AEAD
}

// New returns a Keyring for keys (key ID → 32 raw bytes) sealing with activeKeyID.
func New(keys map[string][]byte, activeKeyID string) (*Keyring, error) {
	aeads, err := codec.NewAEADs("custody", keys, activeKeyID)
	if err != nil {
		return nil, err
	}
	return &Keyring{active: activeKeyID, aeads: aeads}, nil
}

// ActiveKeyID is the ID of the key new values are sealed with.
func (k *Keyring) ActiveKeyID() string {
	if k == nil {
		return ""
	}
	return k.active
}

// Seal seals plain with the active key.
func (k *Keyring) Seal(plain string) (Sealed, error) {
	if k == nil {
		return Sealed{}, ErrNoKey
	}
	if plain == "" {
		return Sealed{}, errors.New("custody: refusing to seal an empty secret")
	}
	aead := k.aeads[k.active]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return Sealed{}, fmt.Errorf("custody: nonce: %w", err)
	}
	ct := aead.Seal(nonce, nonce, []byte(plain), []byte(aadPrefix+k.active))
	return Sealed{Ciphertext: base64.StdEncoding.EncodeToString(ct), KeyID: k.active}, nil
}

// Open returns the secret. A legacy value opens without a key; a zero value
// is an error (there is nothing to reveal).
func (k *Keyring) Open(s Sealed) (string, error) {
	switch {
	case s.legacy != "":
		return s.legacy, nil
	case s.IsZero():
		return "", errors.New("custody: no secret to open")
	case k == nil:
		return "", ErrNoKey
	}
	aead, ok := k.aeads[s.KeyID]
	if !ok {
		return "", fmt.Errorf("custody: secret sealed with key %q (configured: %s): %w",
			s.KeyID, strings.Join(slices.Sorted(maps.Keys(k.aeads)), ", "), ErrUnknownKey)
	}
	data, err := base64.StdEncoding.DecodeString(s.Ciphertext)
	if err != nil || len(data) < aead.NonceSize()+aead.Overhead() {
		return "", fmt.Errorf("custody: secret sealed with key %q is malformed: %w", s.KeyID, ErrTampered)
	}
	plain, err := aead.Open(nil, data[:aead.NonceSize()], data[aead.NonceSize():], []byte(aadPrefix+s.KeyID))
	if err != nil {
		return "", fmt.Errorf("custody: secret sealed with key %q: %w", s.KeyID, ErrTampered)
	}
	return string(plain), nil
}

// Reseal opens s and seals it again with the active key: a legacy value
// becomes sealed, and a value sealed with a retiring key moves to the new one.
func (k *Keyring) Reseal(s Sealed) (Sealed, error) {
	if s.KeyID == k.ActiveKeyID() && !s.Legacy() && !s.IsZero() {
		return s, nil
	}
	plain, err := k.Open(s)
	if err != nil {
		return Sealed{}, err
	}
	return k.Seal(plain)
}
