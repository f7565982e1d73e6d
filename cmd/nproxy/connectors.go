package main

// Every connector the command offers registers its type name on import.
import (
	_ "github.com/nproxy/nproxy/connectors/connect"
	_ "github.com/nproxy/nproxy/connectors/connectssl"
	_ "github.com/nproxy/nproxy/connectors/dnstunnel"
	_ "github.com/nproxy/nproxy/connectors/dual"
	_ "github.com/nproxy/nproxy/connectors/dummy"
	_ "github.com/nproxy/nproxy/connectors/exec"
	_ "github.com/nproxy/nproxy/connectors/httptunnel"
	_ "github.com/nproxy/nproxy/connectors/icmp"
	_ "github.com/nproxy/nproxy/connectors/socks5"
	_ "github.com/nproxy/nproxy/connectors/ssl"
	_ "github.com/nproxy/nproxy/connectors/starttls"
	_ "github.com/nproxy/nproxy/connectors/stdio"
	_ "github.com/nproxy/nproxy/connectors/tcp"
	_ "github.com/nproxy/nproxy/connectors/udp"
	_ "github.com/nproxy/nproxy/connectors/unix"
)
