package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nproxy/nproxy/bench/gnetrelay"
	"github.com/nproxy/nproxy/bench/naive"
	"github.com/tidwall/evio"
)

// roleArgs are the flags of a sub-process role.
type roleArgs struct {
	listen, target, loops, n int
	also                     string // more echo ports
	dur                      time.Duration
	hold                     bool
	step                     string // the tunnel-client's measurement
}

// runRole runs the harness binary as one of its own sub-processes (the
// upstream echo, the naive proxy, the gnet relay, the clients that need a
// process or a network namespace of their own), so that each is a separate
// process measured through /proc like every other peer.
func runRole(role string, a roleArgs) error {
	addr := "127.0.0.1:" + strconv.Itoa(a.listen)
	to := "127.0.0.1:" + strconv.Itoa(a.target)
	switch role {
	case "echo":
		addrs := []string{addr}
		for _, p := range strings.FieldsFunc(a.also, func(r rune) bool { return r == ',' }) {
			addrs = append(addrs, "127.0.0.1:"+p)
		}
		return echo(addrs...)
	case "naive":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		return naive.Serve(ln, to)
	case "gnet":
		return gnetrelay.Run(addr, to, a.loops)
	case "udp-echo":
		return udpEcho(addr)
	case "naive-udp":
		ln, err := listenUDP(addr)
		if err != nil {
			return err
		}
		return naive.ServeUDP(ln, to)
	case "measure":
		return serveMeasure(addr)
	case "tunnel-client":
		return printJSON(measureTunnel(to, a))
	case "live-client":
		return printJSON(liveClient(to, a))
	}
	return fmt.Errorf("unknown role %q", role)
}

// printJSON writes a client role's result as the last line of its output,
// where the harness reads it.
func printJSON(v any) error {
	return json.NewEncoder(os.Stdout).Encode(v)
}

// echo is the upstream for the connection-rate, latency and idle scenarios.
// evio fits here and only here: it has no way to open an outgoing
// connection, so it cannot be a relay, but an echo server is its example.
// One loop, so that it takes at most one of the two cores.
func echo(addrs ...string) error {
	var ev evio.Events
	ev.NumLoops = 1
	ev.Data = func(c evio.Conn, in []byte) ([]byte, evio.Action) {
		return in, evio.None
	}
	for i := range addrs {
		addrs[i] = "tcp://" + addrs[i]
	}
	return evio.Serve(ev, addrs...)
}

func roleMain(role string, a roleArgs) {
	if err := runRole(role, a); err != nil {
		fmt.Fprintln(os.Stderr, "bench", role+":", err)
		os.Exit(1)
	}
}
