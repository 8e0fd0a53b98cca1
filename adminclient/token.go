package adminclient

import (
	"context"
	"net/http"

	"github.com/gatehouse-iot/gatehouse"
	"github.com/gatehouse-iot/gatehouse/registry"
)

// CreateToken creates an API token in scope. The grant's Secret is the
// token itself; the server never returns it again.
func (c *Client) CreateToken(ctx context.Context, scope string, req registry.TokenRequest) (*registry.TokenGrant, error) {
	g := registry.TokenGrant{Token: new(gatehouse.Token)}
	err := c.do(ctx, request{method: http.MethodPost, path: "/v1/scopes/" + seg(scope) + "/tokens", body: req}, &g)
	if err != nil {
		return nil, err
	}
	return &g, nil
}

// ListTokens lists a scope's tokens, revoked ones included (never their
// secrets).
func (c *Client) ListTokens(ctx context.Context, scope string) ([]*gatehouse.Token, error) {
	items, _, err := getList[*gatehouse.Token](ctx, c, request{method: http.MethodGet, path: "/v1/scopes/" + seg(scope) + "/tokens"})
	return items, err
}

// RevokeToken revokes one of a scope's tokens by ID.
func (c *Client) RevokeToken(ctx context.Context, scope, id string) error {
	return c.do(ctx, request{method: http.MethodDelete, path: "/v1/scopes/" + seg(scope) + "/tokens/" + seg(id)}, nil)
}
