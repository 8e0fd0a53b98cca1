// Package netguard keeps Gatehouse's outbound webhook connections (event
// delivery, pre-provisioning and allocation webhooks) away from networks
// the installation closes to them. Webhook URLs are set by scope operators,
// and without a guard any of them could have the server call its cloud's
// metadata service or scan the internal network.
//
// The check runs when a connection is dialled, on the address actually
// dialled, so a host name that resolves (or re-resolves, DNS rebinding) to
// a closed address is refused as well.
package netguard

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Default is the policy a node applies unless told otherwise: link-local
// addresses, where clouds serve instance metadata and credentials
// (169.254.169.254), are closed; private networks and loopback stay open,
// since self-hosted receivers commonly live there.
const Default = "link-local"

// named are the address ranges policies may name. link-local also holds
// the instance metadata addresses clouds serve outside link-local ranges
// (AWS and OCI over IPv6, Alibaba Cloud): closing link-local is meant to
// close instance metadata.
var named = map[string][]netip.Prefix{
	"link-local": prefixes("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "fd00:c1::a9fe:a9fe/128", "100.100.100.200/32"),
	"private":    prefixes("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"),
	"loopback":   prefixes("127.0.0.0/8", "::1/128"),
}

// never are addresses no webhook is ever sent to: "this host" (0.0.0.0
// reaches the local machine), multicast and broadcast.
var never = prefixes("0.0.0.0/8", "::/128", "224.0.0.0/4", "255.255.255.255/32", "ff00::/8")

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Policy is a set of closed address ranges.
type Policy struct {
	spec string
	deny []netip.Prefix
}

// Parse reads a policy: a comma-separated list of range names
// (link-local, private, loopback) and CIDR prefixes (10.20.0.0/16,
// fd00::/8) to close. link-local (instance metadata) is closed whatever
// the list, so that closing more never reopens it; only "none" opens it,
// leaving closed only what is never a webhook's address. Empty is Default.
func Parse(spec string) (*Policy, error) {
	p := &Policy{spec: strings.TrimSpace(spec)}
	if p.spec == "" {
		p.spec = Default
	}
	if p.spec == "none" {
		return p, nil
	}
	p.deny = append(p.deny, named["link-local"]...)
	for item := range strings.SplitSeq(p.spec, ",") {
		item = strings.TrimSpace(item)
		if r, ok := named[item]; ok {
			p.deny = append(p.deny, r...)
			continue
		}
		pf, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("webhook network policy: %q is neither link-local, private, loopback, none nor a CIDR prefix", item)
		}
		p.deny = append(p.deny, pf.Masked())
	}
	return p, nil
}

// MustParse is Parse for constant policies.
func MustParse(spec string) *Policy {
	p, err := Parse(spec)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the policy as given.
func (p *Policy) String() string { return p.spec }

// Check returns an error if ip is closed to webhooks.
func (p *Policy) Check(ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	closed := func(pf netip.Prefix) bool { return pf.Contains(ip) }
	if !ip.IsValid() || slices.ContainsFunc(never, closed) || slices.ContainsFunc(p.deny, closed) {
		return &ClosedError{IP: ip}
	}
	return nil
}

// ClosedError says a webhook's address is closed by the policy.
type ClosedError struct{ IP netip.Addr }

func (e *ClosedError) Error() string {
	return fmt.Sprintf("webhook address %s is closed to webhooks on this installation (serve --webhook-deny)", e.IP)
}

// control is a net.Dialer Control function applying p to the address about
// to be dialled.
func (p *Policy) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook address %q: %w", address, err)
	}
	return p.Check(ap.Addr())
}

// Client returns an HTTP client for webhooks: each connection is checked
// against p, no proxy is used (a proxy would dial in our place, unchecked),
// redirects are not followed (a 3xx is the answer) and TLS is 1.2 or
// later. timeout bounds a whole call; 0 leaves it to the request's
// context.
func (p *Policy) Client(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: p.control}
	t := &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport:     t,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
