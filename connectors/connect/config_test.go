package connect

import (
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors"
)

func TestBuildErrors(t *testing.T) {
	t.Setenv("HTTP_PROXY", "")
	t.Setenv("http_proxy", "")
	for _, tc := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"port": "443", "proxy_host": "p"}, "'out' connector (connect): host parameter is required"},
		{map[string]any{"host": "h", "proxy_host": "p"}, "'out' connector (connect): port parameter is required"},
		{map[string]any{"host": "h", "port": "443"}, "'out' connector (connect): proxy_host parameter is required"},
		{map[string]any{"host": "h", "port": "443", "proxy_host": "p", "proxy_port": "0"}, "proxy_port 0 out of range"},
		{map[string]any{"host": "h", "port": "99999", "proxy_host": "p"}, "port 99999 out of range"},
		{map[string]any{"host": "h", "port": "443", "proxy_host": "p", "proxy_user": "a:b"}, "proxy_user cannot contain a colon"},
		{map[string]any{"host": "h", "port": "443", "proxy_host": "p", "timeout": "soon"}, "timeout expects a number of seconds"},
		{map[string]any{"host": "h", "port": "443", "proxy_host": "p", "proxy_agent": "a\r\nX: y"}, "proxy_agent contains a line break"},
		{map[string]any{"host": "h", "port": "443", "proxy_host": "p", "proxy": "p"}, "unknown parameter 'proxy'"},
	} {
		tc.params["type"] = "connect"
		_, err := connectors.BuildOut("out", tc.params)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.params, err, tc.want)
		}
	}
	for want, params := range map[string]map[string]any{
		"allow rule \"nowhere\"":       {"allow": "nowhere"},
		"no such file":                 {"users_file": "/nonexistent"},
		"header_limit -1 out of range": {"header_limit": "-1"},
		"proxy_protocol must be v1":    {"proxy_protocol": "v3"},
	} {
		params["type"], params["port"] = "connect", "1"
		if _, err := connectors.BuildIn("in", params); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("connect in with %v: %v, want %q", params, err, want)
		}
	}
}

func TestBuildProxySources(t *testing.T) {
	t.Setenv("http_proxy", "")
	t.Setenv("HTTP_PROXY", "http://envuser:envpass@proxy.example.com:3128/")
	build := func(params map[string]any) *Out {
		t.Helper()
		params["type"], params["host"], params["port"] = "connect", "zlonk.crunch.com", "443"
		out, err := connectors.BuildOut("out", params)
		if err != nil {
			t.Fatal(err)
		}
		return out.(*Out)
	}
	if got := build(map[string]any{}).Proxy(); got != (WebProxy{"proxy.example.com", 3128, "envuser", "envpass"}) {
		t.Errorf("from HTTP_PROXY: %+v", got)
	}
	if got := build(map[string]any{"proxy_user": "u", "proxy_pass": "p"}).Proxy(); got.User != "u" || got.Pass != "p" {
		t.Errorf("proxy_user over HTTP_PROXY: %+v", got)
	}
	got := build(map[string]any{"proxy_host": "10.0.0.1", "timeout": "2.5"})
	if got.Proxy() != (WebProxy{Host: "10.0.0.1", Port: 8080}) || got.Timeout != 2500*time.Millisecond {
		t.Errorf("proxy_host wins, port 8080: %+v timeout %v", got.Proxy(), got.Timeout)
	}
	t.Setenv("HTTP_PROXY", "https://secure:443/")
	if _, err := connectors.BuildOut("out", map[string]any{"type": "connect", "host": "h", "port": "1"}); err == nil ||
		!strings.Contains(err.Error(), "HTTP_PROXY: proxy \"https://secure:443/\": scheme") {
		t.Errorf("bad HTTP_PROXY: %v", err)
	}
}
