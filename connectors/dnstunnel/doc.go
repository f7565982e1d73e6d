// Package dnstunnel is nproxy's dns connectors: a stream carried in DNS
// queries and answers, nproxy to nproxy, through resolvers; the wire format
// is in docs/dns.md.
//
// Out asks TXT questions under a domain through a resolver; In is the
// authoritative server for that domain. Crossing a fence that lets only
// DNS out, with the domain t.example delegated to the outside host:
//
//	# inside: local port 2222 to ssh on the outside host
//	nproxy --in type=tcp,port=2222 --out type=dns,domain=t.example,key=s3cret
//	# outside: the authoritative server for t.example
//	nproxy --in type=dns,host=*,port=53,domain=t.example,key=s3cret --out type=tcp,host=localhost,port=22
//
// In Go:
//
//	nproxy.New(&tcp.In{Port: 2222}, &dnstunnel.Out{Domain: "t.example", Key: "s3cret"})
//
// The type's name is "dns".
package dnstunnel

import "github.com/nproxy/nproxy/connectors"

func init() {
	connectors.Register("dns", func(side connectors.Side) any {
		if side == connectors.SideIn {
			return &In{}
		}
		return &Out{}
	})
}
