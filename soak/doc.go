// Package soak is nproxy's soak and fault suite: long runs of the nproxy
// command against real peers (Go echo servers, socat, tinyproxy, TLS
// clients), with faults injected and a user-space netem between two network
// namespaces, ending in a table of every case with its figure and verdict.
//
//	make soak            # about 10 minutes
//	make soak SOAK=60s   # the same cases, shorter
//
// Its tests carry the build tag soak, so `go test ./...` and `make test`
// never run them; `make soak` runs
//
//	SOAK=10m go test -tags soak -count=1 -v -timeout 60m ./soak/
//
// A test package rather than a command, because the cases reuse the
// helpers every other test of nproxy uses (nproxytest's free ports and
// Unavailable, ssltest's certificates, connecttest's tinyproxy), and
// t.Cleanup tears down processes and network namespaces even when a case
// fails or panics. -run picks cases: -run 'TestSoak/wan'.
package soak
