package connect

import (
	"testing"

	ct "github.com/nproxy/nproxy/connectors/connect/connecttest"
	"github.com/nproxy/nproxy/nproxytest"
)

func TestExempt(t *testing.T) {
	for _, tc := range []struct {
		noProxy, lower string
		host           string
		port           int
		want           bool
	}{
		{"", "", "ssh.example.com", 22, false},
		{"*", "", "ssh.example.com", 22, true},
		{"example.com", "", "ssh.example.com", 22, true},
		{"example.com", "", "example.com", 22, true},
		{".example.com", "", "example.com", 22, false},
		{"other.org, example.com", "", "ssh.example.com", 22, true},
		{"example.com:443", "", "ssh.example.com", 22, false},
		{"example.com:443", "", "ssh.example.com", 443, true},
		{"10.0.0.0/8", "", "10.1.2.3", 22, true},
		{"10.0.0.0/8", "", "192.0.2.1", 22, false},
		{"2001:db8::/32", "", "2001:db8::1", 22, true},
		{"", "example.com", "ssh.example.com", 22, true}, // no_proxy when NO_PROXY is unset
		{"other.org", "example.com", "ssh.example.com", 22, false},
		// The web proxy's own localhost is reached through it, always.
		{"*", "", "localhost", 22, false},
		{"127.0.0.1", "", "127.0.0.1", 22, false},
	} {
		env := map[string]string{"NO_PROXY": tc.noProxy, "no_proxy": tc.lower}
		if got := Exempt(func(k string) string { return env[k] }, tc.host, tc.port); got != tc.want {
			t.Errorf("NO_PROXY=%q no_proxy=%q: Exempt(%s, %d) = %v, want %v", tc.noProxy, tc.lower, tc.host, tc.port, got, tc.want)
		}
	}
}

// An exempt target is reached directly: the environment's web proxy (here
// a port where nothing listens) is never asked.
func TestNoProxyConnectsDirectly(t *testing.T) {
	env := map[string]string{"HTTP_PROXY": "http://127.0.0.1:9/", "NO_PROXY": "intranet.example"}
	getenv := func(k string) string { return env[k] }
	exempt := &Out{Host: "intranet.example", Port: 22, Getenv: getenv}
	if err := exempt.Validate(); err != nil || !exempt.direct {
		t.Fatalf("NO_PROXY target: err %v, direct %v", err, exempt.direct)
	}
	proxied := &Out{Host: "www.example", Port: 22, Getenv: getenv}
	if err := proxied.Validate(); err != nil || proxied.direct {
		t.Fatalf("other target: err %v, direct %v", err, proxied.direct)
	}
	// Reaching a name that only NO_PROXY exempts would need a DNS name
	// outside loopback; the direct path itself runs on loopback.
	out := &Out{Host: "127.0.0.1", Port: ct.StartBannerServer(t), Getenv: getenv}
	if err := out.Validate(); err != nil {
		t.Fatal(err)
	}
	out.direct = true
	ports, _, _ := tunnels(t, 0, out)
	echoCheck(t, nproxytest.Dial(t, ports[0]), 1000, true)
}
