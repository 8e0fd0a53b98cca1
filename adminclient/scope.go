package adminclient

import (
	"context"
	"net/http"

	"github.com/gatehouse-iot/gatehouse"
)

// CreateScope creates a scope (tenant). It needs an installation-wide admin
// token.
func (c *Client) CreateScope(ctx context.Context, id string) (*gatehouse.Scope, error) {
	var sc gatehouse.Scope
	err := c.do(ctx, request{method: http.MethodPost, path: "/v1/scopes", body: map[string]string{"id": id}}, &sc)
	if err != nil {
		return nil, err
	}
	return &sc, nil
}

// ListScopes returns the scopes the token may see.
func (c *Client) ListScopes(ctx context.Context) ([]*gatehouse.Scope, error) {
	items, _, err := getList[*gatehouse.Scope](ctx, c, request{method: http.MethodGet, path: "/v1/scopes"})
	return items, err
}

// GetScope returns one scope.
func (c *Client) GetScope(ctx context.Context, id string) (*gatehouse.Scope, error) {
	var sc gatehouse.Scope
	if err := c.do(ctx, request{method: http.MethodGet, path: "/v1/scopes/" + seg(id)}, &sc); err != nil {
		return nil, err
	}
	return &sc, nil
}
