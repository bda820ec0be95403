package codec

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	_, err := rand.Read(k)
	require.NoError(t, err)
	return k
}

type result struct {
	ClientSecret string `json:"clientSecret"`
	TenantID     string `json:"tenantId"`
}

func TestDataConverterRoundTripHidesPlaintext(t *testing.T) {
	c, err := New(map[string][]byte{"k1": newKey(t)}, "k1")
	require.NoError(t, err)
	dc := NewDataConverter(c)

	in := result{ClientSecret: "s3cr3t-value-that-must-not-leak", TenantID: "11111111-1111-1111-1111-111111111111"}
	p, err := dc.ToPayload(in)
	require.NoError(t, err)

	assert.Equal(t, EncodingEncrypted, string(p.Metadata[MetadataEncoding]))
	assert.Equal(t, "k1", string(p.Metadata[MetadataKeyID]))
	assert.False(t, bytes.Contains(p.Data, []byte(in.ClientSecret)), "ciphertext contains the secret")
	assert.False(t, bytes.Contains(p.Data, []byte("json/plain")), "inner metadata not encrypted")

	var out result
	require.NoError(t, dc.FromPayload(p, &out))
	assert.Equal(t, in, out)

	// Same input twice must not give the same ciphertext (fresh nonce each time).
	p2, err := dc.ToPayload(in)
	require.NoError(t, err)
	assert.NotEqual(t, p.Data, p2.Data)
}

func TestDecodeDetectsTampering(t *testing.T) {
	keys := map[string][]byte{"k1": newKey(t), "k2": newKey(t)}
	c, err := New(keys, "k1")
	require.NoError(t, err)
	plain := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"hello"`)}

	tests := []struct {
		name   string
		mutate func(p *commonpb.Payload)
	}{
		{"flipped ciphertext byte", func(p *commonpb.Payload) { p.Data[len(p.Data)-20] ^= 0x01 }},
		{"flipped nonce byte", func(p *commonpb.Payload) { p.Data[0] ^= 0x80 }},
		{"truncated", func(p *commonpb.Payload) { p.Data = p.Data[:10] }},
		{"key ID swapped to another configured key", func(p *commonpb.Payload) { p.Metadata[MetadataKeyID] = []byte("k2") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := c.Encode([]*commonpb.Payload{plain})
			require.NoError(t, err)
			tt.mutate(enc[0])
			_, err = c.Decode(enc)
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrTampered), "got %v", err)
		})
	}
}

func TestDecodeUnknownKeyID(t *testing.T) {
	old, err := New(map[string][]byte{"retired": newKey(t)}, "retired")
	require.NoError(t, err)
	enc, err := old.Encode([]*commonpb.Payload{{Data: []byte("x")}})
	require.NoError(t, err)

	current, err := New(map[string][]byte{"current": newKey(t)}, "current")
	require.NoError(t, err)
	_, err = current.Decode(enc)
	require.ErrorIs(t, err, ErrUnknownKey)
	assert.Contains(t, err.Error(), `"retired"`)
}

func TestRotation(t *testing.T) {
	oldKey, newKeyBytes := newKey(t), newKey(t)
	before, err := New(map[string][]byte{"2025": oldKey}, "2025")
	require.NoError(t, err)
	sealedBefore, err := before.Encode([]*commonpb.Payload{{Data: []byte("written before rotation")}})
	require.NoError(t, err)

	after, err := New(map[string][]byte{"2025": oldKey, "2026": newKeyBytes}, "2026")
	require.NoError(t, err)

	opened, err := after.Decode(sealedBefore)
	require.NoError(t, err)
	assert.Equal(t, "written before rotation", string(opened[0].Data))

	sealedAfter, err := after.Encode([]*commonpb.Payload{{Data: []byte("written after rotation")}})
	require.NoError(t, err)
	assert.Equal(t, "2026", string(sealedAfter[0].Metadata[MetadataKeyID]))

	// The pre-rotation codec cannot read it: proof that the new key was used.
	_, err = before.Decode(sealedAfter)
	assert.ErrorIs(t, err, ErrUnknownKey)
}

func TestDecodePassesThroughUnencrypted(t *testing.T) {
	c, err := New(map[string][]byte{"k1": newKey(t)}, "k1")
	require.NoError(t, err)
	p := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`1`)}
	out, err := c.Decode([]*commonpb.Payload{p})
	require.NoError(t, err)
	assert.Same(t, p, out[0])
}

func TestNewRejectsBadKeys(t *testing.T) {
	tests := []struct {
		name   string
		keys   map[string][]byte
		active string
		want   string
	}{
		{"no keys", nil, "", "no encryption keys"},
		{"short key", map[string][]byte{"k": make([]byte, 16)}, "k", "16 bytes, want 32"},
		{"active missing", map[string][]byte{"a": make([]byte, 32)}, "b", `active key ID "b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.keys, tt.active)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestFailureConverterEncodesMessage(t *testing.T) {
	c, err := New(map[string][]byte{"k1": newKey(t)}, "k1")
	require.NoError(t, err)
	opts := ClientOptions(client.Options{Namespace: "ns"}, c)
	assert.Equal(t, "ns", opts.Namespace)
	require.NotNil(t, opts.DataConverter)
	require.NotNil(t, opts.FailureConverter)

	const leaky = "addPassword failed: secretText=abc123"
	f := opts.FailureConverter.ErrorToFailure(temporal.NewApplicationError(leaky, "Boom"))
	assert.NotContains(t, f.GetMessage(), "abc123")
	enc := f.GetEncodedAttributes()
	require.NotNil(t, enc)
	assert.Equal(t, EncodingEncrypted, string(enc.Metadata[MetadataEncoding]))
	assert.False(t, bytes.Contains(enc.Data, []byte("abc123")))

	back := opts.FailureConverter.FailureToError(f)
	assert.Contains(t, back.Error(), leaky)
}
