package udp

import (
	"strings"
	"testing"
	"time"

	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/loop"
)

// spec parses a command-line SPEC ("type=udp,port=53") as the command does.
func spec(s string) map[string]any {
	m := map[string]any{}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func TestParams(t *testing.T) {
	t.Parallel()
	in, err := connectors.BuildIn("in", spec("type=udp,host=*,port=53,timeout=2.5,max_flows=100,max_datagram=512"))
	if err != nil {
		t.Fatal(err)
	}
	want := &In{Host: "*", Port: 53, Timeout: 2500 * time.Millisecond, MaxFlows: 100, MaxDatagram: 512}
	if got := in.(*In); got.Host != want.Host || got.Port != want.Port || got.Timeout != want.Timeout || got.MaxFlows != want.MaxFlows || got.MaxDatagram != want.MaxDatagram {
		t.Fatalf("got %+v", got)
	}
	out, err := connectors.BuildOut("out", spec("type=udp,host=resolver.example,port=53"))
	if err != nil {
		t.Fatal(err)
	}
	if o := out.(*Out); o.Host != "resolver.example" || o.Port != 53 {
		t.Fatalf("got %+v", o)
	}
	var zero In
	if zero.timeout() != DefaultTimeout || zero.maxFlows() != DefaultMaxFlows || zero.maxDatagram() != loop.MaxDatagram {
		t.Fatal("the zero In does not have the defaults")
	}
}

func TestBadParams(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ side, spec, msg string }{
		{"in", "type=udp", "port parameter is required"},
		{"in", "type=udp,port=70000", "out of range"},
		{"in", "type=udp,port=53,max_datagram=65536", "max_datagram 65536 out of range"},
		{"in", "type=udp,port=53,max_datagram=-1", "out of range"},
		{"in", "type=udp,port=53,max_flows=-5", "max_flows -5 out of range"},
		{"in", "type=udp,port=53,timeout=soon", "timeout expects a number of seconds"},
		{"in", "type=udp,port=53,flows=1", "unknown parameter 'flows'"},
		{"out", "type=udp,port=53", "host parameter is required"},
	} {
		var err error
		if c.side == "in" {
			_, err = connectors.BuildIn("in", spec(c.spec))
		} else {
			_, err = connectors.BuildOut("out", spec(c.spec))
		}
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s %s: got %v, want %q", c.side, c.spec, err, c.msg)
		}
	}
}

// FuzzParams: any SPEC either builds a connector whose limits are in range
// or fails with a message; it never panics.
func FuzzParams(f *testing.F) {
	for _, s := range []string{
		"type=udp,port=53", "type=udp,host=*,port=53,timeout=0.5,max_flows=1,max_datagram=1",
		"type=udp,port=0", "type=udp,port=53,max_datagram=99999999999999999999",
		"type=udp,port=53,timeout=1e308", "type=udp,port=53,timeout=NaN", "type=udp,host=,port=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4096 {
			return
		}
		for _, side := range []connectors.Side{connectors.SideIn, connectors.SideOut} {
			c, err := connectors.Build(side, string(side), spec(s))
			if err != nil {
				continue
			}
			switch c := c.(type) {
			case *In:
				if c.MaxDatagram < 0 || c.MaxDatagram > loop.MaxDatagram || c.MaxFlows < 0 ||
					c.maxDatagram() < 1 || c.maxFlows() < 1 || c.timeout() <= 0 {
					t.Fatalf("%q built an In out of range: %+v", s, c)
				}
			case *Out:
				if c.Host == "" && !strings.Contains(s, "host=") {
					t.Fatalf("%q built an Out without a host", s)
				}
			}
		}
	})
}
