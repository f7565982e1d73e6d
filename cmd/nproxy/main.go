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
	"strconv"
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
use dotted keys: server_first.type=tcp,server_first.port=22.
Connector types: %s.

options:
  -c, --config FILE        YAML configuration (verbosity, max_connections, loops,
                           buffer_size, pipe_size, no_splice,
                           proxies: [{in: {...}, out: {...}}])
  -v, --verbose            more messages (repeat: notice, info, debug)
      --max-connections N  stop after N connections were fully processed
      --loops N            event loops (threads), with SO_REUSEPORT listeners
      --buffer-size N      bytes pending per socket before its peer is paused
                           (default 16384; 0 = unlimited)
      --pipe-size N        capacity asked of the kernel for splice's pipes
                           (default 1048576; the kernel may grant less)
      --no-splice          relay plain TCP through buffers too, never splice
      --version            print the version
  -h, --help               this help
`

func main() {
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
	cfg, err := parseArgs(args)
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
	if err := cfg.apply(); err != nil {
		fmt.Fprintln(os.Stderr, "nproxy:", err)
		return exitConfig
	}
	if err := nproxy.Mainloop(cfg.maxConnections()); err != nil {
		fmt.Fprintln(os.Stderr, "nproxy:", err)
		if errors.As(err, new(*nproxy.ConfigError)) {
			return exitConfig
		}
		return 1
	}
	return cfg.oneShotStatus()
}

var (
	errHelp    = errors.New("help")
	errVersion = errors.New("version")
)

func parseArgs(args []string) (*config, error) {
	cfg := &config{}
	var pending map[string]any // an --in waiting for its --out
	// Options override the file whatever their order, so they are applied
	// once every -c has been read.
	var options []func(*config)
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
		switch name {
		case "-h", "--help":
			return nil, errHelp
		case "--version", "-V":
			return nil, errVersion
		case "-v", "--verbose":
			cfg.verbosity++
		case "-vv", "-vvv":
			cfg.verbosity += len(name) - 1
		case "-c", "--config":
			v, err := needValue()
			if err != nil {
				return nil, err
			}
			if err := cfg.loadFile(v); err != nil {
				return nil, err
			}
		case "--in":
			v, err := needValue()
			if err != nil {
				return nil, err
			}
			if pending != nil {
				return nil, fmt.Errorf("proxy #%d: --in %s has no --out", len(cfg.Proxies)+1, v)
			}
			if pending, err = parseSpec(v); err != nil {
				return nil, fmt.Errorf("proxy #%d: --in: %w", len(cfg.Proxies)+1, err)
			}
		case "--out":
			v, err := needValue()
			if err != nil {
				return nil, err
			}
			if pending == nil {
				return nil, fmt.Errorf("proxy #%d: --out %s has no --in before it", len(cfg.Proxies)+1, v)
			}
			out, err := parseSpec(v)
			if err != nil {
				return nil, fmt.Errorf("proxy #%d: --out: %w", len(cfg.Proxies)+1, err)
			}
			cfg.Proxies = append(cfg.Proxies, proxyConfig{In: pending, Out: out})
			pending = nil
		case "--no-splice":
			options = append(options, func(c *config) { c.NoSplice = true })
		case "--max-connections", "--loops", "--buffer-size", "--pipe-size":
			v, err := needValue()
			if err != nil {
				return nil, err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("option %s needs a non-negative integer, not %q", name, v)
			}
			options = append(options, func(c *config) { c.setNumber(name, n) })
		default:
			return nil, fmt.Errorf("unknown option %s (see --help)", arg)
		}
	}
	if pending != nil {
		return nil, fmt.Errorf("proxy #%d: --in without --out", len(cfg.Proxies)+1)
	}
	for _, set := range options {
		set(cfg)
	}
	if len(cfg.Proxies) == 0 {
		return nil, errors.New("no proxy: give --in SPEC --out SPEC or -c FILE (see --help)")
	}
	return cfg, nil
}

// parseSpec reads "key=value,key=value"; dotted keys nest:
// "server_first.port=22" sets port in the server_first map.
func parseSpec(spec string) (map[string]any, error) {
	m := map[string]any{}
	for _, item := range strings.Split(spec, ",") {
		if item == "" {
			continue
		}
		key, value, ok := strings.Cut(item, "=")
		if !ok || key == "" {
			return nil, fmt.Errorf("%q is not key=value", item)
		}
		if err := setPath(m, strings.Split(key, "."), value); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	return m, nil
}

func setPath(m map[string]any, path []string, value string) error {
	for _, k := range path[:len(path)-1] {
		sub, ok := m[k].(map[string]any)
		if !ok {
			if _, exists := m[k]; exists {
				return fmt.Errorf("%s is both a value and a connector", k)
			}
			sub = map[string]any{}
			m[k] = sub
		}
		m = sub
	}
	last := path[len(path)-1]
	if _, dup := m[last]; dup {
		return errors.New("given twice")
	}
	m[last] = value
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
