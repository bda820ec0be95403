package emulator

import (
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// accessClaims are the claims of the access tokens the emulator issues (v2.0 shape).
type accessClaims struct {
	TenantID string   `json:"tid"`
	AppID    string   `json:"appid"`
	AZP      string   `json:"azp,omitempty"`
	ObjectID string   `json:"oid"`
	Roles    []string `json:"roles,omitempty"`
	Scope    string   `json:"scp,omitempty"` // delegated tokens only (authorize.go)
	UPN      string   `json:"upn,omitempty"`
	Version  string   `json:"ver"`
	jwt.RegisteredClaims
}

const tokenLifetime = time.Hour

func (s *Server) issuer(tenantID string) string { return s.URL() + "/" + tenantID + "/v2.0" }

// issueToken signs an access token; exp lets tests mint expired tokens.
func (s *Server) issueToken(tenantID, appID, spID, aud string, roles []string, iat, exp time.Time) (string, error) {
	c := accessClaims{
		TenantID: tenantID, AppID: appID, AZP: appID, ObjectID: spID, Roles: roles, Version: "2.0",
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: s.issuer(tenantID), Subject: spID, Audience: jwt.ClaimStrings{aud},
			IssuedAt: jwt.NewNumericDate(iat), NotBefore: jwt.NewNumericDate(iat), ExpiresAt: jwt.NewNumericDate(exp),
			ID: newGUID(),
		},
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	t.Header["kid"] = s.kid
	return t.SignedString(s.signKey)
}

// errTokenExpired is distinguished because both Graph and Dataverse say so in their message.
var errTokenExpired = errors.New("lifetime validation failed, the token is expired")

// verifyToken checks signature, lifetime and issuer; audience and tenant are the caller's business.
func (s *Server) verifyToken(raw string) (*accessClaims, error) {
	var c accessClaims
	_, err := jwt.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid != s.kid {
			return nil, errors.New("signing key not found")
		}
		return &s.signKey.PublicKey, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if errors.Is(err, jwt.ErrTokenExpired) {
		return nil, errTokenExpired
	}
	if err != nil {
		return nil, fmt.Errorf("invalid token: %w", err)
	}
	if c.Issuer != s.issuer(c.TenantID) {
		return nil, errors.New("invalid issuer")
	}
	return &c, nil
}

func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
}

func rsaJWK(kid string, pub *rsa.PublicKey) jwk {
	return jwk{
		Kty: "RSA", Use: "sig", Kid: kid, Alg: "RS256",
		N: base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}
