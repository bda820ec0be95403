package graph

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mktos2s/mktos2s/internal/msapi"
)

// GrantedRoles returns the application permissions (app roles) admin
// consent gave the caller on Microsoft Graph: the roles claim of the
// access token its requests carry. Entra issues that claim from the
// consented permissions, so it answers "may the provisioner do X" before
// anything is tried ("Microsoft identity platform access tokens", claims
// reference: roles). The token is read, not verified: it comes from the
// token endpoint over TLS and goes nowhere but Graph, which verifies it.
func (c *Client) GrantedRoles(ctx context.Context) ([]string, error) {
	if c.api.Tokens == nil {
		return nil, &msapi.Error{Service: "graph", Op: "grantedRoles", Kind: msapi.Unauthorized, Message: "no token source"}
	}
	tok, err := c.api.Tokens.Token(ctx)
	if err != nil {
		if _, ok := msapi.AsError(err); ok {
			return nil, err
		}
		return nil, &msapi.Error{Service: "graph", Op: "grantedRoles", Kind: msapi.Unauthorized, Message: "could not acquire an access token", Err: err}
	}
	roles, err := RolesFromToken(tok)
	if err != nil {
		return nil, &msapi.Error{Service: "graph", Op: "grantedRoles", Kind: msapi.Invalid, Message: "the access token cannot be read", Err: err}
	}
	return roles, nil
}

// RolesFromToken reads the roles claim of a JWT access token, sorted; a
// token without the claim has no application permissions.
func RolesFromToken(raw string) ([]string, error) {
	var claims struct {
		Roles []string `json:"roles"`
		jwt.RegisteredClaims
	}
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &claims); err != nil {
		if errors.Is(err, jwt.ErrTokenMalformed) {
			return nil, fmt.Errorf("not a JWT: %w", err)
		}
		return nil, err
	}
	roles := append([]string{}, claims.Roles...)
	sort.Strings(roles)
	return roles, nil
}
