package gatehouse

import "time"

// Scope is a tenant. Every device, token and event belongs to exactly one;
// nothing crosses between scopes. The scope "default" always exists.
type Scope struct {
	ID        string      `json:"id"`
	CreatedAt time.Time   `json:"createdAt"`
	Policy    ScopePolicy `json:"policy"`
}
