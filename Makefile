# nproxy: the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
BIN     := bin/nproxy
IN_PORT ?= 6789
UP_PORT ?= 9876

.PHONY: build test deps run bench bench-full bench-deps fuzz soak clean

build:
	$(GO) build -o $(BIN) ./cmd/nproxy

# Every program the tests start as a real peer, from Debian (run as root;
# .ci/run uses it too): socat, tinyproxy, haproxy, openssl, OpenSSH, curl,
# GNU httptunnel, ptunnel, dnsmasq and dig, microsocks, dante-server,
# stunnel4, iperf3, iproute2 (network namespaces, tc netem), iptables,
# prlimit (util-linux), ps (procps), strace.
DEPS := socat tinyproxy haproxy openssl openssh-server openssh-client curl \
	httptunnel ptunnel dnsmasq bind9-dnsutils microsocks dante-server stunnel4 \
	iperf3 iproute2 iptables util-linux procps strace

deps:
	@missing=""; for p in $(DEPS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The default test run: vet, then every package with the race detector.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 9m ./...

# A working relay: an echo server on 127.0.0.1:$(UP_PORT) (socat), nproxy in
# front of it on 127.0.0.1:$(IN_PORT) at -vv, one line sent through to show
# bytes flowing; then nproxy stays in the foreground until Ctrl-C.
run: build
	@command -v socat >/dev/null || { echo "make run needs socat (apt-get install socat)"; exit 1; }
	@set -e; \
	socat TCP-LISTEN:$(UP_PORT),bind=127.0.0.1,reuseaddr,fork EXEC:cat & echo_pid=$$!; \
	trap 'kill $$echo_pid 2>/dev/null' EXIT INT TERM; \
	$(BIN) -vv --in type=tcp,host=127.0.0.1,port=$(IN_PORT) --out type=tcp,host=127.0.0.1,port=$(UP_PORT) & np_pid=$$!; \
	trap 'kill $$echo_pid $$np_pid 2>/dev/null' EXIT INT TERM; \
	sleep 0.5; \
	echo "hello through nproxy" | socat -t 1 - TCP:127.0.0.1:$(IN_PORT); \
	echo "nproxy relays 127.0.0.1:$(IN_PORT) -> echo on 127.0.0.1:$(UP_PORT); try: socat - TCP:127.0.0.1:$(IN_PORT)  (Ctrl-C stops)"; \
	wait $$np_pid

# Benchmarks against socat, haproxy, a naive Go proxy, gnet and Net::Proxy,
# plus the Go micro-benchmarks; regenerates BENCHMARKS.md and bench/charts.
# `make bench` is the quick mode (about 2 minutes, one round), `make bench-full` the
# full one (about half an hour). `make bench-deps` installs the peers (Debian).
bench:
	$(GO) run ./bench -quick

bench-full:
	$(GO) run ./bench

bench-deps:
	DEBIAN_FRONTEND=noninteractive apt-get install -y socat haproxy iperf3 perl linux-perf iproute2 \
		sslh tinyproxy proxytunnel libwww-perl systemd stunnel4 \
		microsocks dante-server httptunnel ptunnel dnsmasq

# The soak and fault suite (soak/, build tag soak; never part of make test):
# about 10 minutes by default, `make soak SOAK=60s` for a short run. It ends
# with a table of every case, its figures and its verdict.
SOAK ?= 10m
soak:
	SOAK=$(SOAK) $(GO) test -tags soak -count=1 -v -timeout 90m ./soak/

# Short runs of every fuzz target (go test runs their seed corpora anyway).
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run XXX -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin
