// Package icmp tunnels streams through ICMP echo packets, compatible with
// PingTunnel 0.72 (Debian's ptunnel); the protocol is in docs/icmp.md.
//
// Out is a ptunnel client, In a ptunnel proxy; either may face the real
// ptunnel. Crossing a fence that lets pings through, with nproxy on both
// sides:
//
//	# inside: local port 2222 to 10.0.0.5:22 through the proxy at gw.example.com
//	nproxy --in type=tcp,port=2222 --out type=icmp,proxy_host=gw.example.com,host=10.0.0.5,port=22,password=s3cret
//	# outside (gw.example.com): the proxy connects what clients ask for
//	nproxy --in type=icmp,password=s3cret,allow=10.0.0.5:22 --out type=tcp
//
// In Go:
//
//	nproxy.New(&tcp.In{Port: 2222}, &icmp.Out{ProxyHost: "gw.example.com", Host: "10.0.0.5", Port: 22, Password: "s3cret"})
//	nproxy.New(&icmp.In{Password: "s3cret", Allow: []string{"10.0.0.5:22"}}, &tcp.Out{})
//
// Raw ICMP sockets need CAP_NET_RAW. The types' names are "icmp".
package icmp

import "github.com/nproxy/nproxy/connectors"

func init() {
	connectors.Register("icmp", func(side connectors.Side) any {
		if side == connectors.SideIn {
			return &In{}
		}
		return &Out{}
	})
}
