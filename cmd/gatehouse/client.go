package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/gatehouse-iot/gatehouse/adminclient"
)

// Files a server writes to its data directory for the CLI. (The server
// package names them too; the CLI does not import it for an admin command.)
const (
	dataURLFile        = "url"
	dataAdminTokenFile = "admin-token"
	dataCAFile         = "ca.pem"
)

// setting returns a global flag's value if it was given, else the
// environment variable's.
func (a *app) setting(flag, env string) string {
	if f := a.flags.Lookup(flag); f != nil && f.Changed {
		return f.Value.String()
	}
	return strings.TrimSpace(a.getenv(env))
}

// connection is where and how the admin commands reach a server.
type connection struct {
	server string
	token  string
	caFile string
	local  bool // the server is the one whose data directory we read
}

// resolve works out the connection from flags, environment and the data
// directory. The data directory's admin token and CA certificate are used
// only for a local server (its URL came from DATA/url or the default, or
// names a loopback address), so that a local admin token is never sent to
// another server.
func (a *app) resolve(needToken bool) (connection, error) {
	var c connection
	dataDir := a.setting("data-dir", envDataDir)
	if dataDir == "" {
		dataDir = defaultDataDir
	}
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dataDir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		} else if err != nil {
			return "", fmt.Errorf("read %s: %w", name, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	dataURL, err := read(dataURLFile)
	if err != nil {
		return c, err
	}
	c.server = a.setting("server", envServer)
	switch {
	case c.server == "" && dataURL != "":
		c.server, c.local = dataURL, true
	case c.server == "":
		c.server, c.local = defaultServerURL, true
	default:
		c.local = c.server == dataURL || loopbackURL(c.server)
	}
	if c.token = a.setting("token", envToken); c.token == "" && c.local {
		if c.token, err = read(dataAdminTokenFile); err != nil {
			return c, err
		}
	}
	if c.caFile = a.setting("ca-file", envCAFile); c.caFile == "" && c.local {
		path := filepath.Join(dataDir, dataCAFile)
		if _, err := os.Stat(path); err == nil {
			c.caFile = path
		}
	}
	if c.token == "" && needToken {
		if !c.local {
			return c, fmt.Errorf("no API token for %s: pass --token or set %s", c.server, envToken)
		}
		return c, fmt.Errorf("no API token: pass --token or set %s, or on the server's host point --data-dir at its data directory (%s holds no %s)",
			envToken, dataDir, dataAdminTokenFile)
	}
	return c, nil
}

func loopbackURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	h := u.Hostname()
	ip := net.ParseIP(h)
	return h == "localhost" || ip != nil && ip.IsLoopback()
}

// client returns a client of the resolved server.
func (a *app) client() (*adminclient.Client, error) { return a.newClient(true) }

// publicClient returns a client for the endpoints that need no token (the
// CRL): it sends a token if one is configured, and works without.
func (a *app) publicClient() (*adminclient.Client, error) { return a.newClient(false) }

func (a *app) newClient(needToken bool) (*adminclient.Client, error) {
	c, err := a.resolve(needToken)
	if err != nil {
		return nil, err
	}
	var opts []adminclient.Option
	if c.caFile != "" {
		opts = append(opts, adminclient.WithCAFile(c.caFile))
	}
	cl, err := adminclient.New(c.server, c.token, opts...)
	if err != nil {
		// A malformed URL or an unusable CA file: bad settings.
		return nil, &usageError{err.Error()}
	}
	return cl, nil
}
