// Command nproxy runs Net::Proxy-style proxies from the command line or a
// YAML file:
//
//	nproxy --in type=tcp,host=127.0.0.1,port=6789 --out type=tcp,host=127.0.0.1,port=9876
//	nproxy -c nproxy.yaml
//	nproxy connect-tunnel -P proxy:8080 -T 2222:ssh.example.com:22
//	nproxy sslh -p 0.0.0.0:443 -s localhost:22 -l localhost:8443
//
// Configuration errors are reported in one line that names the proxy, the
// connector and the key, with exit status 2, before anything listens.
package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
)

// subcommands are the front-ends that other files of this command add, each
// a main of its own returning the exit status: Net::Proxy's scripts.
var subcommands = map[string]func(args []string) int{}

const usage = `usage: nproxy [options] --in SPEC --out SPEC [--in SPEC --out SPEC ...]
       nproxy [options] -c FILE
       nproxy SUBCOMMAND [options]   (%s)

SPEC is a comma-separated list of key=value with Net::Proxy's parameter
names, type included: type=tcp,host=127.0.0.1,port=6789. Nested connectors
use dotted keys: server_first.type=tcp,server_first.port=22. A value with
commas is quoted, SSL_alpn="h2,http/1.1", or its key repeated (a list).
Connector types: %s.

options:
  -c, --config FILE        YAML configuration (verbosity, max_connections, loops,
                           force_loops, buffer_size, pipe_size, no_splice, grace,
                           access_log, proxies: [{in: {...}, out: {...}}])
  -v, --verbose            more messages (repeat: notice, info, debug)
      --max-connections N  stop after N connections were fully processed
      --loops N            event loops (threads), with SO_REUSEPORT listeners
                           (1 to 4 per core)
      --force-loops        allow up to 1024 loops
      --buffer-size N      bytes pending per socket before its peer is paused
                           (default 16384; 0 = unlimited)
      --pipe-size N        capacity asked of the kernel for splice's pipes
                           (default 1048576; the kernel may grant less)
      --no-splice          relay plain TCP through buffers too, never splice
      --grace SECONDS      how long SIGTERM/SIGUSR1 let connections finish after
                           the listeners close (default 30)
      --log-format FORMAT  text (Net::Proxy's lines, the default) or json
      --metrics HOST:PORT  serve /metrics (Prometheus), /healthz and /readyz
      --access-log PATH    append one line per finished connection to PATH
                           ('-' is stderr), whatever the verbosity
      --version            print the version
  -h, --help               this help
`

func main() {
	early = catchSignals() // first: see signals.go
	args := os.Args[1:]
	if len(args) > 0 {
		if sub, ok := subcommands[args[0]]; ok {
			os.Exit(sub(args[1:]))
		}
	}
	os.Exit(run(args))
}

// exitConfig is the status for a configuration that cannot run.
const exitConfig = 2

func run(args []string) int {
	if err := inheritListeners(); err != nil {
		fmt.Fprintln(os.Stderr, "nproxy:", err)
		return exitConfig
	}
	s, proxies, err := configure(args)
	if errors.Is(err, errHelp) {
		fmt.Printf(usage, subcommandNames(), strings.Join(connectors.Types(), ", "))
		return 0
	}
	if errors.Is(err, errVersion) {
		fmt.Println("nproxy", nproxy.Version)
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nproxy:", err)
		return exitConfig
	}
	closeAccessLog, err := openAccessLog(s.AccessLog)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nproxy:", err)
		return exitConfig
	}
	defer closeAccessLog()
	s.apply(proxies)
	stopMetrics, err := startMetrics()
	if err != nil {
		fmt.Fprintln(os.Stderr, "nproxy:", err)
		return exitConfig
	}
	defer stopMetrics()
	announceReady()
	early.onReload(reloader(args))
	if err := early.mainloop(maxConnections(s, proxies), s.Grace); err != nil {
		fmt.Fprintln(os.Stderr, "nproxy:", err)
		if errors.As(err, new(*nproxy.ConfigError)) {
			return exitConfig
		}
		return 1
	}
	return oneShotStatus(proxies)
}

// configure reads the command line (and the files it names) into checked
// settings and the proxies they describe.
func configure(args []string) (*settings, []*nproxy.Proxy, error) {
	c, err := parseArgs(args)
	if err != nil {
		return nil, nil, err
	}
	s, err := c.decode()
	if err != nil {
		return nil, nil, err
	}
	proxies, err := s.build()
	return s, proxies, err
}

var (
	errHelp    = errors.New("help")
	errVersion = errors.New("version")
)

// maxVerboseFlags bounds -v: debug (3) is the most there is, and a longer
// run of v's is more likely a typo than a wish.
const maxVerboseFlags = 3

// optionKeys are the options that set a configuration key, by name.
var optionKeys = map[string]string{
	"--max-connections": "max_connections",
	"--loops":           "loops",
	"--buffer-size":     "buffer_size",
	"--pipe-size":       "pipe_size",
	"--grace":           "grace",
	"--access-log":      "access_log",
}

// parseArgs reads the command line. Options override the file whatever
// their order, so they are merged once every -c has been read.
func parseArgs(args []string) (*config, error) {
	c := newConfig()
	options := newConfig()
	var pending map[string]any // an --in waiting for its --out
	for i := 0; i < len(args); i++ {
		arg := args[i]
		name, value, hasValue := strings.Cut(arg, "=")
		if !strings.HasPrefix(arg, "--") || !hasValue {
			name, value = arg, ""
		}
		needValue := func() (string, error) {
			if hasValue && strings.HasPrefix(arg, "--") {
				return value, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("option %s needs a value", name)
			}
			i++
			return args[i], nil
		}
		var err error
		switch {
		case name == "-h" || name == "--help":
			return nil, errHelp
		case name == "--version" || name == "-V":
			return nil, errVersion
		case name == "--verbose" || isVerboseFlag(name):
			c.vCount += verboseCount(name)
			if c.vCount > maxVerboseFlags {
				return nil, fmt.Errorf("-v given more than %d times (verbosity goes from 0 to 3)", maxVerboseFlags)
			}
		case name == "-c" || name == "--config":
			if value, err = needValue(); err == nil {
				err = c.loadFile(value)
			}
		case name == "--in":
			if value, err = needValue(); err == nil {
				pending, err = parseIn(pending, value, len(c.proxies)+1)
			}
		case name == "--out":
			if value, err = needValue(); err == nil {
				err = c.parseOut(pending, value)
				pending = nil
			}
		case name == "--no-splice":
			err = options.setOption(name, "no_splice", true)
		case name == "--force-loops":
			err = options.setOption(name, "force_loops", true)
		case optionKeys[name] != "":
			if value, err = needValue(); err == nil {
				err = options.setOption(name, optionKeys[name], value)
			}
		case observeOptions[name] != nil:
			if value, err = needValue(); err == nil {
				err = observeOptions[name](value)
			}
		default:
			return nil, fmt.Errorf("unknown option %s (see --help)", arg)
		}
		if err != nil {
			return nil, err
		}
	}
	if pending != nil {
		return nil, fmt.Errorf("proxy #%d: --in without --out", len(c.proxies)+1)
	}
	for k, v := range options.keys {
		c.keys[k] = v
	}
	return c, nil
}

// isVerboseFlag is -v, -vv, -vvv...: Net::Proxy's scripts bundle them.
func isVerboseFlag(arg string) bool {
	return len(arg) > 1 && arg[0] == '-' && strings.Trim(arg[1:], "v") == ""
}

func verboseCount(arg string) int {
	if arg == "--verbose" {
		return 1
	}
	return len(arg) - 1
}

func parseIn(pending map[string]any, spec string, proxy int) (map[string]any, error) {
	if pending != nil {
		return nil, fmt.Errorf("proxy #%d: --in %s has no --out", proxy, spec)
	}
	in, err := parseSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("proxy #%d: --in: %w", proxy, err)
	}
	return in, nil
}

func (c *config) parseOut(in map[string]any, spec string) error {
	proxy := len(c.proxies) + 1
	if in == nil {
		return fmt.Errorf("proxy #%d: --out %s has no --in before it", proxy, spec)
	}
	out, err := parseSpec(spec)
	if err != nil {
		return fmt.Errorf("proxy #%d: --out: %w", proxy, err)
	}
	c.addProxy(in, out)
	return nil
}

func subcommandNames() string {
	names := make([]string, 0, len(subcommands))
	for n := range subcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
