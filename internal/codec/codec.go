// Package codec encrypts every Temporal payload of mktos2s with AES-256-GCM.
//
// The onboarding result carries a client secret, so nothing the product hands
// to Temporal may be stored in plain text. Each encrypted payload names the key
// that sealed it in its metadata, which lets operators rotate keys: a new key
// becomes the active one for encryption while older keys stay configured for
// decryption until no history references them.
package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/proto"
)

// Metadata names and values written on encrypted payloads. The Temporal UI and
// CLI show them, and a codec server from another deployment can tell which key
// it needs.
const (
	MetadataEncoding  = "encoding"
	EncodingEncrypted = "binary/encrypted"
	MetadataKeyID     = "encryption-key-id"
)

// KeySize is the AES-256 key length in bytes.
const KeySize = 32

// ErrUnknownKey is returned when a payload was sealed with a key that is not configured.
var ErrUnknownKey = errors.New("unknown encryption key ID")

// ErrTampered is returned when a payload fails GCM authentication: it was
// altered, truncated, or sealed with a different key under the same ID.
var ErrTampered = errors.New("payload authentication failed")

// Codec is a converter.PayloadCodec that seals payloads with the active key
// and opens payloads sealed with any configured key.
type Codec struct {
	active string
	aeads  map[string]cipher.AEAD
}

var _ converter.PayloadCodec = (*Codec)(nil)

// New returns a Codec for the given keys (key ID → 32 raw bytes). activeKeyID
// selects the encryption key and must be one of keys.
func New(keys map[string][]byte, activeKeyID string) (*Codec, error) {
	aeads, err := NewAEADs("codec", keys, activeKeyID)
	if err != nil {
		return nil, err
	}
	return &Codec{active: activeKeyID, aeads: aeads}, nil
}

// NewAEADs builds one AES-256-GCM per key ID and checks that activeKeyID is
// among them. what prefixes the errors. internal/custody seals client
// secrets with a key ring of the same shape, so both are built here.
func NewAEADs(what string, keys map[string][]byte, activeKeyID string) (map[string]cipher.AEAD, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no encryption keys configured", what)
	}
	if _, ok := keys[activeKeyID]; !ok {
		return nil, fmt.Errorf("%s: active key ID %q is not among the configured keys (%s)",
			what, activeKeyID, strings.Join(slices.Sorted(maps.Keys(keys)), ", "))
	}
	aeads := make(map[string]cipher.AEAD, len(keys))
	for id, key := range keys {
		if id == "" {
			return nil, fmt.Errorf("%s: empty key ID", what)
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("%s: key %q is %d bytes, want %d (AES-256)", what, id, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("%s: key %q: %w", what, id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("%s: key %q: %w", what, id, err)
		}
		aeads[id] = aead
	}
	return aeads, nil
}

// ActiveKeyID is the ID of the key new payloads are sealed with.
func (c *Codec) ActiveKeyID() string { return c.active }

// Encode seals each payload (metadata and data, marshalled as a protobuf) with
// the active key. The key ID is authenticated as additional data, so moving a
// ciphertext under another key ID is detected.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	aead := c.aeads[c.active]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("codec: marshal payload: %w", err)
		}
		nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("codec: nonce: %w", err)
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				MetadataEncoding: []byte(EncodingEncrypted),
				MetadataKeyID:    []byte(c.active),
			},
			Data: aead.Seal(nonce, nonce, plain, []byte(c.active)),
		}
	}
	return out, nil
}

// Decode opens payloads sealed by Encode and passes any other payload through
// unchanged (Temporal also runs codecs over payloads it wrote itself).
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[MetadataEncoding]) != EncodingEncrypted {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		aead, ok := c.aeads[id]
		if !ok {
			return nil, fmt.Errorf("codec: payload sealed with key %q (configured: %s): %w",
				id, strings.Join(slices.Sorted(maps.Keys(c.aeads)), ", "), ErrUnknownKey)
		}
		data := p.GetData()
		if len(data) < aead.NonceSize()+aead.Overhead() {
			return nil, fmt.Errorf("codec: payload sealed with key %q is truncated: %w", id, ErrTampered)
		}
		nonce, sealed := data[:aead.NonceSize()], data[aead.NonceSize():]
		plain, err := aead.Open(nil, nonce, sealed, []byte(id))
		if err != nil {
			// The GCM error says nothing useful and must not be mistaken for a retryable one.
			return nil, fmt.Errorf("codec: payload sealed with key %q: %w", id, ErrTampered)
		}
		decoded := &commonpb.Payload{}
		if err := proto.Unmarshal(plain, decoded); err != nil {
			return nil, fmt.Errorf("codec: unmarshal payload sealed with key %q: %w", id, err)
		}
		out[i] = decoded
	}
	return out, nil
}

// NewDataConverter wraps Temporal's default data converter with the codec.
func NewDataConverter(c converter.PayloadCodec) converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// NewFailureConverter encodes failure messages and stack traces through dc, so
// an error that quotes a response body cannot leak it into the history.
func NewFailureConverter(dc converter.DataConverter) converter.FailureConverter {
	return temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{
		DataConverter:          dc,
		EncodeCommonAttributes: true,
	})
}

// ClientOptions returns o with the codec's data converter and failure
// converter set. Every Temporal client of the product goes through it.
func ClientOptions(o client.Options, c converter.PayloadCodec) client.Options {
	dc := NewDataConverter(c)
	o.DataConverter = dc
	o.FailureConverter = NewFailureConverter(dc)
	return o
}
