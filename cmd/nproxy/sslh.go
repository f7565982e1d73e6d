package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
	"github.com/nproxy/nproxy/connectors/dual"
	"github.com/nproxy/nproxy/connectors/dummy"
	"github.com/nproxy/nproxy/connectors/tcp"
)

// sslh is Net::Proxy's script of that name: one port shared by an SSH and
// an SSL/HTTPS server, a dual connector between them. It differs from the
// script in three ways: the timeout may be fractional, as the script's
// manual says but its option parser (=i) refuses; a client that opens with
// "SSH-" goes to the SSH server at once, since OpenSSH's client speaks
// first and the timeout rule alone would send it to the SSL server
// (--no-ssh-probe restores the script's rule); and -V and -h work.
func init() { subcommands["sslh"] = sslh }

func sslh(args []string) int {
	o, err := parseSSLH(args, os.Stdout, net.LookupHost)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errVersion):
		fmt.Println("nproxy sslh", nproxy.Version)
		return 0
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		return exitConfig
	}
	nproxy.SetVerbosity(o.Verbosity)
	nproxy.New(o.in(), dummy.Connector{}).Register()
	if err := early.mainloop(0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "sslh:", err)
		if errors.As(err, new(*nproxy.ConfigError)) {
			return exitConfig
		}
		return 1
	}
	return 0
}

// sslhOptions are sslh's options once checked.
type sslhOptions struct {
	Listen, SSH, SSL hostPort
	Timeout          time.Duration
	SSHProbe         bool
	Verbosity        int
}

// hostPort is a [host:]port option, host defaulting to localhost.
type hostPort struct {
	Host string
	Port int
}

func (h hostPort) String() string { return net.JoinHostPort(h.Host, strconv.Itoa(h.Port)) }

// in is the script's proxy: dual in, ssh server first, ssl client first.
func (o *sslhOptions) in() *dual.In {
	sshOut := &tcp.Out{Host: o.SSH.Host, Port: o.SSH.Port}
	in := &dual.In{
		Host: o.Listen.Host, Port: o.Listen.Port, Timeout: o.Timeout,
		ServerFirst: sshOut,
		ClientFirst: &tcp.Out{Host: o.SSL.Host, Port: o.SSL.Port},
	}
	if o.SSHProbe {
		in.Routes = []dual.Route{{Probe: dual.SSH{}, Out: sshOut}}
	}
	return in
}

const sslhUsage = `Usage: sslh [-v] [-p host:port] [-t timeout] [--ssh host:port] [--ssl host:port]

Shares one port between an SSH server and an SSL/HTTPS server: a client
that stays silent for the timeout goes to SSH (whose server speaks first),
one that speaks first goes to SSL, and one that opens with "SSH-" (as
OpenSSH's client does, without waiting) goes to SSH at once.

  -p, --port [host:]port          listen here (default localhost:443)
  -t, --timeout seconds           how long a silent client may wait, possibly
                                  fractional (default 2)
  -s, --ssh [host:]port           the SSH server (default localhost:22)
  -l, --ssl, --https [host:]port  the SSL/HTTPS server (default localhost:443)
      --no-ssh-probe              route by the timeout alone, as the script does
  -v, --verbose                   more messages (repeatable)
  -V, --version                   print the version
  -h, --help                      this help
`

// parseSSLH reads sslh's command line and makes the script's checks, with
// its messages. lookup resolves names for the duplicate check, as the
// script's gethostbyname does.
func parseSSLH(args []string, usage io.Writer, lookup func(string) ([]string, error)) (*sslhOptions, error) {
	fs := flag.NewFlagSet("nproxy sslh", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		port, ssh, ssl = "localhost:443", "localhost:22", "localhost:443"
		timeout        = 2.0
		verbosity      countValue
		version, help  bool
		noSSHProbe     bool
	)
	for _, name := range []string{"p", "port"} {
		fs.StringVar(&port, name, port, "")
	}
	for _, name := range []string{"t", "timeout"} {
		fs.Float64Var(&timeout, name, timeout, "")
	}
	for _, name := range []string{"s", "ssh"} {
		fs.StringVar(&ssh, name, ssh, "")
	}
	for _, name := range []string{"l", "ssl", "https"} {
		fs.StringVar(&ssl, name, ssl, "")
	}
	for _, name := range []string{"v", "verbose"} {
		fs.Var(&verbosity, name, "")
	}
	for _, name := range []string{"V", "version"} {
		fs.BoolVar(&version, name, false, "")
	}
	for _, name := range []string{"h", "help"} {
		fs.BoolVar(&help, name, false, "")
	}
	fs.BoolVar(&noSSHProbe, "no-ssh-probe", false, "")
	if err := fs.Parse(unbundle(args)); err != nil {
		return nil, fmt.Errorf("%v\n%s", err, strings.SplitN(sslhUsage, "\n", 2)[0])
	}
	switch {
	case help:
		fmt.Fprint(usage, sslhUsage)
		return nil, flag.ErrHelp
	case version:
		return nil, errVersion
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected argument %q\n%s", fs.Arg(0), strings.SplitN(sslhUsage, "\n", 2)[0])
	case !(timeout > 0) || timeout > maxTimeout:
		return nil, errors.New("--timeout <seconds> must be a positive number (possibly fractional)")
	case ssh == ssl:
		return nil, errors.New("--ssh and -ssl must point to different servers")
	}
	o := &sslhOptions{
		Timeout:   time.Duration(timeout * float64(time.Second)),
		SSHProbe:  !noSSHProbe,
		Verbosity: int(verbosity),
	}
	// The script's order, which its duplicate message follows.
	addrs := []namedAddr{{"ssl", ssl, &o.SSL}, {"ssh", ssh, &o.SSH}, {"port", port, &o.Listen}}
	for _, a := range addrs {
		hp, err := parseHostPort(a.value)
		if err != nil {
			return nil, fmt.Errorf("--%s %s: %w", a.name, a.value, err)
		}
		*a.dest = hp
	}
	return o, checkDistinct(addrs, lookup)
}

// namedAddr is an address option: its name, its value, where it goes.
type namedAddr struct {
	name  string
	value string
	dest  *hostPort
}

// maxTimeout keeps the timeout a sane duration.
const maxTimeout = 24 * 3600

// unbundle splits bundled -v flags ("-vvv") as Getopt::Long's bundling does.
func unbundle(args []string) []string {
	var out []string
	for _, a := range args {
		if len(a) > 2 && a[0] == '-' && strings.Trim(a[1:], "v") == "" {
			for range len(a) - 1 {
				out = append(out, "-v")
			}
			continue
		}
		out = append(out, a)
	}
	return out
}

// parseHostPort reads [host:]port; the host may be a name, an IPv4 address
// or an IPv6 address, bracketed or not (the port follows the last colon).
func parseHostPort(s string) (hostPort, error) {
	host, port := "localhost", s
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return hostPort{}, fmt.Errorf("port %q must be a number in 1-65535", port)
	}
	given := host
	if host, err = connectors.ParseHost("host", given); err != nil || host == "*" {
		return hostPort{}, fmt.Errorf("%q is not a host name or an IP address", given)
	}
	if host == "" {
		host = "localhost"
	}
	return hostPort{Host: host, Port: n}, nil
}

// checkDistinct refuses two options that name the same address, after
// resolving names: "Options --ssl and --port are identical! (127.0.0.1:443)".
func checkDistinct(addrs []namedAddr, lookup func(string) ([]string, error)) error {
	byAddr := map[string][]string{}
	var order []string
	for _, a := range addrs {
		ip, err := firstAddr(a.dest.Host, lookup)
		if err != nil {
			return fmt.Errorf("--%s %s: %w", a.name, a.value, err)
		}
		key := net.JoinHostPort(ip, strconv.Itoa(a.dest.Port))
		if byAddr[key] == nil {
			order = append(order, key)
		}
		byAddr[key] = append(byAddr[key], "--"+a.name)
	}
	for _, key := range order {
		if names := byAddr[key]; len(names) > 1 {
			return fmt.Errorf("Options %s are identical! (%s)", strings.Join(names, " and "), key)
		}
	}
	return nil
}

// firstAddr resolves host to one address, IPv4 first, as gethostbyname does.
func firstAddr(host string, lookup func(string) ([]string, error)) (string, error) {
	if ip := net.ParseIP(host); ip != nil {
		return ip.String(), nil
	}
	addrs, err := lookup(host)
	if err != nil || len(addrs) == 0 {
		return "", fmt.Errorf("can't resolve %s: %v", host, err)
	}
	for _, a := range addrs {
		if ip := net.ParseIP(a); ip != nil && ip.To4() != nil {
			return ip.String(), nil
		}
	}
	return addrs[0], nil
}
