package graph

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func unsignedToken(t testing.TB, claims jwt.MapClaims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte("k"))
	require.NoError(t, err)
	return s
}

func TestRolesFromToken(t *testing.T) {
	roles, err := RolesFromToken(unsignedToken(t, jwt.MapClaims{"roles": []string{"Organization.Read.All", "Application.ReadWrite.OwnedBy"}}))
	require.NoError(t, err)
	assert.Equal(t, []string{"Application.ReadWrite.OwnedBy", "Organization.Read.All"}, roles)

	roles, err = RolesFromToken(unsignedToken(t, jwt.MapClaims{"appid": "x"}))
	require.NoError(t, err)
	assert.Empty(t, roles, "no roles claim: no application permissions")

	for _, bad := range []string{"", "abc", "a.b.c", unsignedToken(t, jwt.MapClaims{"roles": "one"})} {
		_, err := RolesFromToken(bad)
		assert.Error(t, err, bad)
	}
}

func FuzzRolesFromToken(f *testing.F) {
	f.Add(unsignedToken(f, jwt.MapClaims{"roles": []string{"Domain.Read.All"}}))
	f.Add("eyJhbGciOiJub25lIn0.eyJyb2xlcyI6W119.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, raw string) {
		roles, err := RolesFromToken(raw)
		if err == nil && roles == nil {
			t.Fatal("success without a slice")
		}
	})
}
