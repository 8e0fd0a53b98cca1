package gatehouse

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"strings"
	"time"
)

// Role is what an API token may do within its scope.
type Role string

const (
	RoleViewer   Role = "viewer"   // read only
	RoleOperator Role = "operator" // devices and their lifecycle
	RoleAdmin    Role = "admin"    // everything in the scope, tokens included
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleViewer || r == RoleOperator || r == RoleAdmin }

func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// GlobalScope is the Scope of a token that spans the installation: it may
// create scopes and act in all of them.
const GlobalScope = "*"

// Token is an API token as stored: never the secret, only its SHA-256. The
// secret is 256 random bits, so a fast hash is as strong as a slow one here.
type Token struct {
	ID        string     `json:"id"`
	Scope     string     `json:"scope"`
	Name      string     `json:"name"`
	Role      Role       `json:"role"`
	Hash      []byte     `json:"-"`
	CreatedAt time.Time  `json:"createdAt"`
	CreatedBy string     `json:"createdBy"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

const tokenPrefix = "gh_"

var tokenIDEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewTokenSecret returns a fresh token string "gh_<id>_<secret>" and its ID.
// The ID is public (it names the token in lists and audit records); the
// secret part is 32 random bytes.
func NewTokenSecret() (token, id string) {
	idb := make([]byte, 10)
	sec := make([]byte, 32)
	rand.Read(idb)
	rand.Read(sec)
	id = strings.ToLower(tokenIDEncoding.EncodeToString(idb))
	return tokenPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(sec), id
}

// ParseToken splits a presented token into its ID and returns the hash to
// compare against the stored one.
func ParseToken(token string) (id string, hash []byte, err error) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return "", nil, Errorf(EUnauthenticated, "malformed API token")
	}
	id, _, ok = strings.Cut(rest, "_")
	if !ok || len(id) != 16 {
		return "", nil, Errorf(EUnauthenticated, "malformed API token")
	}
	return id, HashToken(token), nil
}

// HashToken returns the digest stored for a token.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Matches compares a presented token's hash with the stored one in constant time.
func (t *Token) Matches(hash []byte) bool {
	return subtle.ConstantTimeCompare(t.Hash, hash) == 1
}

// Principal is an authenticated caller of the admin API.
type Principal struct {
	TokenID string
	Name    string
	Scope   string // GlobalScope for installation-wide tokens
	Role    Role
}

// Actor is how the principal appears in history and events.
func (p *Principal) Actor() string { return "token:" + p.TokenID }

// Global reports whether p may act across all scopes.
func (p *Principal) Global() bool { return p.Scope == GlobalScope && p.Role == RoleAdmin }

// Sees reports whether p may know that scope exists at all.
func (p *Principal) Sees(scope string) bool { return p.Scope == GlobalScope || p.Scope == scope }

// Authorize returns nil if p may act in scope with at least role need. A
// caller who may not see the scope gets ENotFound, so that scope names cannot
// be probed; one who sees it but lacks the role gets EForbidden.
func (p *Principal) Authorize(scope string, need Role) error {
	if p == nil {
		return Errorf(EUnauthenticated, "authentication required: send Authorization: Bearer <token>")
	}
	if !p.Sees(scope) {
		return Errorf(ENotFound, "scope %q not found", scope)
	}
	if p.Role.rank() < need.rank() {
		return Errorf(EForbidden, "this needs the %s role; the token has %s", need, p.Role)
	}
	return nil
}

// SystemActor is the actor of changes Gatehouse makes on its own.
const SystemActor = "system"
