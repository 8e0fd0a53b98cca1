package netguard_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-iot/gatehouse/netguard"
)

func TestCheck(t *testing.T) {
	for _, tt := range []struct {
		spec   string
		open   []string
		closed []string
	}{
		{netguard.Default,
			[]string{"127.0.0.1", "::1", "10.1.2.3", "192.168.1.1", "8.8.8.8", "2001:db8::1"},
			[]string{"169.254.169.254", "::ffff:169.254.169.254", "fe80::1", "0.0.0.0", "::", "224.0.0.1", "255.255.255.255", "ff02::1"}},
		{"none",
			[]string{"169.254.169.254", "127.0.0.1", "10.0.0.1"},
			[]string{"0.0.0.0", "0.1.2.3", "239.1.1.1"}},
		{"link-local, private,loopback",
			[]string{"8.8.8.8", "172.32.0.1", "2001:db8::1"},
			[]string{"127.0.0.1", "::1", "10.0.0.1", "172.16.5.5", "192.168.0.1", "100.64.0.1", "fd00::1", "::ffff:10.0.0.1", "169.254.1.1"}},
		{"203.0.113.0/24,2001:db8::/32",
			[]string{"203.0.114.1", "2001:db9::1", "10.0.0.1"},
			[]string{"203.0.113.7", "2001:db8:1::1", "169.254.169.254", "fd00:ec2::254"}},
		{"private", // closing more keeps link-local closed
			[]string{"127.0.0.1", "8.8.8.8"},
			[]string{"10.0.0.1", "169.254.169.254", "100.100.100.200"}},
		{"",
			[]string{"127.0.0.1", "10.0.0.1"},
			[]string{"169.254.169.254"}},
	} {
		p, err := netguard.Parse(tt.spec)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.spec, err)
		}
		for _, a := range tt.open {
			if err := p.Check(netip.MustParseAddr(a)); err != nil {
				t.Errorf("%q: %s closed (%v), want open", tt.spec, a, err)
			}
		}
		for _, a := range tt.closed {
			var ce *netguard.ClosedError
			if err := p.Check(netip.MustParseAddr(a)); !errors.As(err, &ce) {
				t.Errorf("%q: %s open (%v), want closed", tt.spec, a, err)
			}
		}
	}
	// Clouds that serve instance metadata (and credentials) outside
	// 169.254/16 and fe80::/10: AWS's IPv6 endpoint, OCI's IPv6 endpoint,
	// Alibaba Cloud's. The default must close them as it does 169.254.169.254.
	def := netguard.MustParse(netguard.Default)
	for _, a := range []string{"fd00:ec2::254", "fd00:c1::a9fe:a9fe", "100.100.100.200"} {
		var ce *netguard.ClosedError
		if err := def.Check(netip.MustParseAddr(a)); !errors.As(err, &ce) {
			t.Errorf("default policy: metadata address %s open (%v), want closed", a, err)
		}
	}
	for _, bad := range []string{"intranet", "10.0.0.0/33", "link-local;private", "10.0.0.1"} {
		if _, err := netguard.Parse(bad); err == nil || !strings.Contains(err.Error(), "CIDR") {
			t.Errorf("Parse(%q) = %v, want an error naming what is accepted", bad, err)
		}
	}
}

// TestClient: the client dials through the policy (a host name is checked
// on the address it resolves to), follows no redirect and uses no proxy.
func TestClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	t.Setenv("HTTP_PROXY", "http://proxy.invalid:3128")
	open := netguard.MustParse(netguard.Default).Client(5 * time.Second)
	res, err := open.Get(srv.URL)
	if err != nil {
		t.Fatalf("loopback receiver under the default policy: %v", err)
	}
	res.Body.Close()
	if res, err = open.Get(srv.URL + "/redirect"); err != nil || res.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("redirect: %v %v, want the 307 itself", res, err)
	}
	res.Body.Close()

	closed := netguard.MustParse("loopback").Client(5 * time.Second)
	localhost := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	for _, u := range []string{srv.URL, localhost} {
		_, err := closed.Get(u)
		var ce *netguard.ClosedError
		if !errors.As(err, &ce) {
			t.Errorf("GET %s with loopback closed: %v, want a ClosedError", u, err)
		}
	}
}
