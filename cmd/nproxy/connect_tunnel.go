package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/connect"
	"github.com/nproxy/nproxy/connectors/tcp"
)

// connect-tunnel is Net::Proxy's script of that name: each -T opens a
// local port whose clients are tunnelled through the web proxy with
// CONNECT. It differs from the script in three ways: without -L it
// listens on every IPv4 and IPv6 address (the script: 0.0.0.0); a tunnel's
// host may contain hyphens or be an IPv6 address, bracketed or not; and
// HTTP_PROXY may be written as a URL (http://user:pass@host:port/).
func init() { subcommands["connect-tunnel"] = connectTunnel }

func connectTunnel(args []string) int {
	o, err := parseConnectTunnel(args, os.Getenv, nproxy.Version, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitConfig
	}
	nproxy.SetVerbosity(o.Verbosity)
	if err := o.register(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return exitConfig
	}
	if err := early.mainloop(0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "connect-tunnel:", err)
		if errors.As(err, new(*nproxy.ConfigError)) {
			return exitConfig
		}
		return 1
	}
	return 0
}

// register makes one proxy per tunnel: tcp in, connect out.
func (o *connectTunnelOptions) register() error {
	host := "*"
	if o.LocalOnly {
		host = "localhost"
	}
	for i, t := range o.Tunnels {
		out := &connect.Out{
			Host: t.Host, Port: t.HostPort,
			ProxyHost: o.Proxy.Host, ProxyPort: o.Proxy.Port,
			ProxyUser: o.Proxy.User, ProxyPass: o.Proxy.Pass,
			ProxyAgent: o.Agent,
		}
		if err := out.Validate(); err != nil {
			return fmt.Errorf("--tunnel #%d: %w", i+1, err)
		}
		nproxy.New(&tcp.In{Host: host, Port: t.Port}, out).Register()
	}
	return nil
}

// tunnel is one -T option: listen on Port, tunnel to Host:HostPort.
type tunnel struct {
	Port     int
	Host     string
	HostPort int
}

// connectTunnelOptions are connect-tunnel's options once checked.
type connectTunnelOptions struct {
	Proxy     connect.WebProxy // with the -A credentials
	Tunnels   []tunnel
	LocalOnly bool
	Agent     string
	Verbosity int
}

const connectTunnelUsage = `usage: nproxy connect-tunnel [-Lv] [-A user:pass] [-P proxy[:port]] [-U agent] -T port:host:hostport [-T ...]

  -P, --proxy host[:port]       the web proxy (default: HTTP_PROXY; port 8080)
  -T, --tunnel port:host:hostport
                                listen on port and tunnel its clients to
                                host:hostport through the proxy (repeatable)
  -A, --proxy-authentication user:pass
                                Basic credentials for the proxy
  -L, --local-only              listen on localhost only (default: every address)
  -U, --user-agent string       User-Agent sent to the proxy
                                (default: connect-tunnel/%s)
  -v, --verbose                 more messages (repeatable)
`

// tunnelRE is the script's `^\d+:[\w.]+:\d+$`, widened to every host form
// connectors.ParseHost takes: names with hyphens, IPv6 addresses with or
// without brackets (the ports are the digits at either end).
var tunnelRE = regexp.MustCompile(`^(\d+):(.+):(\d+)$`)

// listValue collects a repeatable string option.
type listValue []string

func (v *listValue) String() string     { return strings.Join(*v, " ") }
func (v *listValue) Set(s string) error { *v = append(*v, s); return nil }

// countValue counts a repeatable boolean option (-v -v).
type countValue int

func (v *countValue) String() string   { return strconv.Itoa(int(*v)) }
func (v *countValue) Set(string) error { *v++; return nil }
func (v *countValue) IsBoolFlag() bool { return true }

// parseConnectTunnel reads connect-tunnel's command line. The messages for
// a missing --proxy or --tunnel and a malformed tunnel are the script's.
func parseConnectTunnel(args []string, getenv func(string) string, version string, usage io.Writer) (*connectTunnelOptions, error) {
	fs := flag.NewFlagSet("nproxy connect-tunnel", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.Usage = func() { fmt.Fprintf(usage, connectTunnelUsage, version) }
	var (
		proxy, auth, agent string
		tunnels            listValue
		verbosity          countValue
		localOnly          bool
	)
	defaultAgent := "connect-tunnel/" + version
	for _, name := range []string{"P", "proxy"} {
		fs.StringVar(&proxy, name, "", "")
	}
	for _, name := range []string{"T", "tunnel"} {
		fs.Var(&tunnels, name, "")
	}
	for _, name := range []string{"A", "proxy-authentication"} {
		fs.StringVar(&auth, name, "", "")
	}
	for _, name := range []string{"L", "local-only"} {
		fs.BoolVar(&localOnly, name, false, "")
	}
	for _, name := range []string{"U", "user-agent"} {
		fs.StringVar(&agent, name, defaultAgent, "")
	}
	for _, name := range []string{"v", "verbose"} {
		fs.Var(&verbosity, name, "")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o := &connectTunnelOptions{LocalOnly: localOnly, Agent: agent, Verbosity: int(verbosity)}
	if err := o.setProxy(proxy, auth, getenv); err != nil {
		return nil, err
	}
	if len(tunnels) == 0 {
		return nil, errors.New("--tunnel <port:host:hostport> option required")
	}
	for _, spec := range tunnels {
		t, err := parseTunnel(spec)
		if err != nil {
			return nil, err
		}
		o.Tunnels = append(o.Tunnels, t)
	}
	return o, nil
}

// setProxy takes -P, else HTTP_PROXY, then applies -A over any
// credentials found in HTTP_PROXY.
func (o *connectTunnelOptions) setProxy(proxy, auth string, getenv func(string) string) error {
	var err error
	switch {
	case proxy != "":
		o.Proxy, err = connect.ParseProxyURL(proxy)
	default:
		var ok bool
		o.Proxy, ok, err = connect.ProxyFromEnv(getenv)
		if !ok {
			return errors.New("--proxy <proxy:port> option required")
		}
	}
	if err != nil {
		return fmt.Errorf("--proxy: %w", err)
	}
	if auth != "" {
		o.Proxy.User, o.Proxy.Pass, _ = strings.Cut(auth, ":")
	}
	return nil
}

func parseTunnel(spec string) (tunnel, error) {
	m := tunnelRE.FindStringSubmatch(spec)
	if m == nil {
		return tunnel{}, errors.New("--tunnel <port:host:hostport> format required")
	}
	port, err1 := strconv.Atoi(m[1])
	hostPort, err2 := strconv.Atoi(m[3])
	if err1 != nil || err2 != nil || port < 1 || port > 65535 || hostPort < 1 || hostPort > 65535 {
		return tunnel{}, fmt.Errorf("--tunnel %s: port out of range 1-65535", spec)
	}
	host, err := connectors.ParseHost("host", m[2])
	if err != nil || host == "" || host == "*" {
		return tunnel{}, errors.New("--tunnel <port:host:hostport> format required")
	}
	return tunnel{Port: port, Host: host, HostPort: hostPort}, nil
}
