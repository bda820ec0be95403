// Package testcodec holds the payload-encryption key that the tests share.
//
// TEST ONLY. The key below is committed to the repository, so anything it
// encrypts is readable by anyone: it exists so that recorded histories in
// testdata/ (encrypted exactly as the product encrypts them) can be replayed.
// Never configure it in a real deployment.
package testcodec

import (
	"encoding/base64"
	"fmt"

	"go.temporal.io/sdk/client"

	"github.com/mktos2s/mktos2s/internal/codec"
	"github.com/mktos2s/mktos2s/internal/custody"
)

const (
	// KeyID is stored in the metadata of every payload the tests encrypt.
	KeyID = "test-only-public-key"
	// KeyBase64 is 32 random bytes. PUBLIC, TEST ONLY.
	KeyBase64 = "T9t5ks8cLjBLkizUNsMONIwePR78Op+yUs4L6tzArx4="
)

// Keys is the codec.keys setting (key ID → base64) for the test key.
func Keys() map[string]string { return map[string]string{KeyID: KeyBase64} }

// New returns the product's codec over the test key.
func New() (*codec.Codec, error) {
	raw, err := base64.StdEncoding.DecodeString(KeyBase64)
	if err != nil {
		return nil, fmt.Errorf("testcodec: %w", err)
	}
	return codec.New(map[string][]byte{KeyID: raw}, KeyID)
}

// ClientOptions returns o with the product's data and failure converters over
// the test key, the same wiring every client and worker of the product uses.
func ClientOptions(o client.Options) (client.Options, error) {
	c, err := New()
	if err != nil {
		return o, err
	}
	return codec.ClientOptions(o, c), nil
}

// The custody key the tests share: it seals client secrets inside payloads
// (internal/custody). PUBLIC, TEST ONLY, like the codec key, and a different
// key from it, as the product requires.
const (
	CustodyKeyID     = "test-only-public-custody"
	CustodyKeyBase64 = "sLfMrDNJqQf7hvuVt/oOhCNDEDM75gzvXqn8VjMKa5Q="
)

// CustodyKeys is the custody.keys setting for the test custody key.
func CustodyKeys() map[string]string { return map[string]string{CustodyKeyID: CustodyKeyBase64} }

// Custody returns a key ring over the test custody key.
func Custody() *custody.Keyring {
	raw, err := base64.StdEncoding.DecodeString(CustodyKeyBase64)
	if err != nil {
		panic(err) // a constant
	}
	k, err := custody.New(map[string][]byte{CustodyKeyID: raw}, CustodyKeyID)
	if err != nil {
		panic(err)
	}
	return k
}

// Seal seals plain with the test custody key (for fakes and fixtures).
func Seal(plain string) custody.Sealed {
	s, err := Custody().Seal(plain)
	if err != nil {
		panic(err)
	}
	return s
}

// Open opens s with the test custody key; "" when it does not open.
func Open(s custody.Sealed) string {
	plain, err := Custody().Open(s)
	if err != nil {
		return ""
	}
	return plain
}
