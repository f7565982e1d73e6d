package connect

import (
	"strings"
	"testing"
)

func TestParseProxyURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want WebProxy
		err  string
	}{
		{"http://proxy.example.com:3128/", WebProxy{Host: "proxy.example.com", Port: 3128}, ""},
		{"http://proxy.example.com", WebProxy{Host: "proxy.example.com", Port: 8080}, ""},
		{"proxy.example.com:3128", WebProxy{Host: "proxy.example.com", Port: 3128}, ""},
		{"http://book:s3kr3t@127.0.0.1:8888/", WebProxy{"127.0.0.1", 8888, "book", "s3kr3t"}, ""},
		{"http://b%40k:p%3Ass@[::1]/", WebProxy{"::1", 8080, "b@k", "p:ss"}, ""},
		{"http://user@h:1", WebProxy{"h", 1, "user", ""}, ""},
		{"https://h:1/", WebProxy{}, "scheme \"https\" unsupported"},
		{"socks5://h:1", WebProxy{}, "unsupported"},
		{"http://h:1/path", WebProxy{}, "path"},
		{"http://h:1/?q", WebProxy{}, "query"},
		{"http://:1/", WebProxy{}, "no host"},
		{"http://h:0/", WebProxy{}, "out of range"},
		{"http://h:70000/", WebProxy{}, "out of range"},
		{"http://h:x/", WebProxy{}, "proxy \"http://h:x/\""},
		{"http://h\n:1/", WebProxy{}, "proxy"},
	} {
		got, err := ParseProxyURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestProxyFromEnv(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if _, ok, err := ProxyFromEnv(getenv); ok || err != nil {
		t.Fatalf("empty environment: ok %v err %v", ok, err)
	}
	env["http_proxy"] = "http://low:1/"
	if w, ok, _ := ProxyFromEnv(getenv); !ok || w.Host != "low" {
		t.Fatalf("http_proxy: %+v %v", w, ok)
	}
	env["HTTP_PROXY"] = "http://up:2/"
	if w, ok, _ := ProxyFromEnv(getenv); !ok || w.Host != "up" || w.Port != 2 {
		t.Fatalf("HTTP_PROXY first: %+v %v", w, ok)
	}
	env["HTTP_PROXY"] = "ftp://x/"
	if _, ok, err := ProxyFromEnv(getenv); !ok || err == nil || !strings.HasPrefix(err.Error(), "HTTP_PROXY: ") {
		t.Fatalf("bad HTTP_PROXY: ok %v err %v", ok, err)
	}
}

// FuzzParseProxyURL checks that any setting is refused or yields a usable
// host and port.
func FuzzParseProxyURL(f *testing.F) {
	for _, s := range []string{"http://u:p@h:1/", "h", "[::1]:8080", "http://%zz@h/", "http://h:99999", "socks5://h", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseProxyURL(s)
		if err == nil && (w.Host == "" || w.Port < 1 || w.Port > 65535) {
			t.Fatalf("%q accepted as %+v", s, w)
		}
	})
}
