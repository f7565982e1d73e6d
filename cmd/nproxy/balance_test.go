package main

import (
	"strings"
	"testing"
)

// An out side with servers is a balance over one connector per server,
// each with the out side's keys and its own; the balancing keys are
// checked like every key.
func TestBalanceKeys(t *testing.T) {
	t.Parallel()
	const in = "{type: tcp, port: 1000}"
	good := []string{
		"{type: tcp, servers: [{host: a, port: 1}, {host: b, port: 2, weight: 3}]}",
		"{type: tcp, timeout: 2, balance: leastconn, check: tcp, interval: 0.5, rise: 2, fall: 3, servers: [{host: a, port: 1}]}",
		"{type: tcp, balance: source, servers: [{host: a, port: 1}, {host: '[::1]', port: 2}]}",
	}
	for _, out := range good {
		if _, _, err := configure([]string{"-c", yamlFile(t, "proxies: [{in: "+in+", out: "+out+"}]\n")}); err != nil {
			t.Errorf("%s: %v", out, err)
		}
	}
	bad := map[string]string{
		"{type: tcp, balance: most, servers: [{host: a, port: 1}]}": "balance \"most\" unknown",
		"{type: tcp, check: http, servers: [{host: a, port: 1}]}":   "check \"http\" unknown",
		"{type: tcp, servers: [{host: a, port: 1, weight: 0}]}":     "server #1: weight 0 out of range",
		"{type: tcp, servers: [{host: a, port: 1, colour: red}]}":   "unknown parameter 'colour'",
		"{type: tcp, servers: [{host: a}]}":                         "port",
		"{type: tcp, servers: []}":                                  "servers: the list is empty",
		"{type: tcp, rise: 0, servers: [{host: a, port: 1}]}":       "rise 0 out of range",
	}
	for out, want := range bad {
		_, _, err := configure([]string{"-c", yamlFile(t, "proxies: [{in: "+in+", out: "+out+"}]\n")})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", out, err, want)
		}
	}
}
