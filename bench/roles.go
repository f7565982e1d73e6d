package main

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/nproxy/nproxy/bench/gnetrelay"
	"github.com/nproxy/nproxy/bench/naive"
	"github.com/tidwall/evio"
)

// runRole runs the harness binary as one of its own sub-processes (the
// upstream echo, the naive proxy, the gnet relay), so that each is a separate
// process measured through /proc like every other peer.
func runRole(role string, listen, target int, loops int) error {
	addr := "127.0.0.1:" + strconv.Itoa(listen)
	to := "127.0.0.1:" + strconv.Itoa(target)
	switch role {
	case "echo":
		return echo(addr)
	case "naive":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		return naive.Serve(ln, to)
	case "gnet":
		return gnetrelay.Run(addr, to, loops)
	case "udp-echo":
		return udpEcho(addr)
	case "naive-udp":
		ln, err := listenUDP(addr)
		if err != nil {
			return err
		}
		return naive.ServeUDP(ln, to)
	}
	return fmt.Errorf("unknown role %q", role)
}

// echo is the upstream for the connection-rate, latency and idle scenarios.
// evio fits here and only here: it has no way to open an outgoing
// connection, so it cannot be a relay, but an echo server is its example.
// One loop, so that it takes at most one of the two cores.
func echo(addr string) error {
	var ev evio.Events
	ev.NumLoops = 1
	ev.Data = func(c evio.Conn, in []byte) ([]byte, evio.Action) {
		return in, evio.None
	}
	return evio.Serve(ev, "tcp://"+addr)
}

func roleMain(role string, listen, target, loops int) {
	if err := runRole(role, listen, target, loops); err != nil {
		fmt.Fprintln(os.Stderr, "bench", role+":", err)
		os.Exit(1)
	}
}
