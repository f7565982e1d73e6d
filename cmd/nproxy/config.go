package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
	"go.yaml.in/yaml/v3"
)

// settings are the command's options, whether they come from a YAML file or
// the command line: both are maps of the same keys, decoded by
// connectors.Decode, so they take the same values and fail with the same
// messages. Every number has a range.
type settings struct {
	Verbosity      int  `param:"verbosity,max=3"`
	MaxConnections int  `param:"max_connections,max=1000000000"`
	Loops          int  `param:"loops,min=1,max=1024"`
	ForceLoops     bool `param:"force_loops"`
	// BufferSize 0 is unlimited (Net::Proxy 0.13); a GiB per socket is past
	// any use and near what one process could hold.
	BufferSize int `param:"buffer_size,max=1073741824"`
	// PipeSize is asked of the kernel, which caps unprivileged pipes at
	// /proc/sys/fs/pipe-max-size (1 MiB) and any pipe far below 256 MiB.
	PipeSize int  `param:"pipe_size,max=268435456"`
	NoSplice bool `param:"no_splice"`
	// Grace bounds a drain (SIGTERM, SIGUSR1): 0 means defaultGrace.
	Grace time.Duration `param:"grace"`
	// ConnectTimeout bounds the out connectors' connects that set no
	// timeout of their own.
	ConnectTimeout time.Duration `param:"connect_timeout"`
	// The limits of every proxy together.
	limitParams
	Proxies []map[string]any `param:"proxies,max=4096"`

	// AccessLog is a file that gets the access lines alone, whatever the
	// verbosity; "-" is standard error.
	AccessLog string `param:"access_log"`

	global nproxy.Limits // limitParams, checked
}

// proxyParams is one entry of proxies.
type proxyParams struct {
	In  map[string]any `param:"in,required"`
	Out map[string]any `param:"out,required"`
}

// loopsPerCore bounds loops without force_loops: a loop is a thread busy
// with its own sockets, so more loops than cores only add fds (each loop
// has its own listeners, epoll and pipes) and context switches. 100,000
// loops once opened 11,500 fds and failed with a misleading EMFILE.
const loopsPerCore = 4

// config is the command's configuration as read: the raw keys of every
// source, later ones overriding earlier ones, and the proxies in the order
// given. decode turns it into settings.
type config struct {
	keys    map[string]any
	proxies []any
	vCount  int // -v given that many times, added to verbosity
}

func newConfig() *config { return &config{keys: map[string]any{}} }

// maxConfigSize bounds the file read, like every parser here.
const maxConfigSize = 1 << 20

// loadFile reads a YAML file's keys; they are checked at once, so that the
// message names the file.
func (c *config) loadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return err
	}
	if len(data) > maxConfigSize {
		return fmt.Errorf("%s: larger than %d bytes", path, maxConfigSize)
	}
	keys, err := parseYAML(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return c.merge(keys, path)
}

// parseYAML reads a document into the maps and lists Decode takes. yaml.v3
// refuses documents whose aliases expand excessively, so a small file
// cannot ask for gigabytes.
func parseYAML(data []byte) (map[string]any, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, errors.New(strings.ReplaceAll(err.Error(), "\n", " "))
	}
	if doc == nil {
		return map[string]any{}, nil
	}
	keys, ok := stringKeys(doc).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("expects a map of settings at the top level, got %s", kind(doc))
	}
	return keys, nil
}

// stringKeys turns the maps YAML makes with non-string keys ("1: x") into
// maps of strings, as the command line's dotted keys are.
func stringKeys(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = stringKeys(e)
		}
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = stringKeys(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = stringKeys(e)
		}
	}
	return v
}

func kind(v any) string {
	switch v.(type) {
	case []any:
		return "a list"
	case map[string]any:
		return "a map"
	}
	return `"` + connectors.Clip(fmt.Sprint(v)) + `"`
}

// merge checks keys (from a file, or an option when where names it) and
// adds them to the configuration: settings override, proxies add up.
func (c *config) merge(keys map[string]any, where string) error {
	var s settings
	if err := connectors.Decode(&s, keys, where); err != nil {
		return err
	}
	for i, p := range s.Proxies {
		at := fmt.Sprintf("proxy #%d", len(c.proxies)+i+1)
		if where != "" {
			at = where + ": " + at
		}
		if err := connectors.Decode(&proxyParams{}, p, at); err != nil {
			return err
		}
	}
	for _, p := range s.Proxies {
		c.proxies = append(c.proxies, p)
	}
	for k, v := range keys {
		if k != "proxies" {
			c.keys[k] = v
		}
	}
	return nil
}

// setOption sets key from a command-line option, checked as the file's
// keys are: "--loops -3" and "loops: -3" fail alike.
func (c *config) setOption(option, key string, value any) error {
	return c.merge(map[string]any{key: value}, "option "+option)
}

// addProxy adds a proxy given by --in and --out specs.
func (c *config) addProxy(in, out map[string]any) {
	c.proxies = append(c.proxies, map[string]any{"in": in, "out": out})
}

// decode checks the configuration as a whole and makes its settings.
func (c *config) decode() (*settings, error) {
	keys := map[string]any{"proxies": c.proxies}
	for k, v := range c.keys {
		keys[k] = v
	}
	s := &settings{Loops: 1}
	if err := connectors.Decode(s, keys, ""); err != nil {
		return nil, err
	}
	if most := loopsPerCore * runtime.NumCPU(); s.Loops > most && !s.ForceLoops {
		return nil, fmt.Errorf("loops %d out of range (1-%d, %d per core; force_loops or --force-loops allows up to 1024)",
			s.Loops, most, loopsPerCore)
	}
	// -v adds to the file's verbosity; debug (3) is the most there is.
	s.Verbosity = min(s.Verbosity+c.vCount, 3)
	if _, set := c.keys["buffer_size"]; set && s.BufferSize == 0 {
		s.BufferSize = -1 // Net::Proxy 0.13: 0 is unlimited
	}
	var err error
	if s.global, err = s.limitParams.limits(""); err != nil {
		return nil, err
	}
	if len(s.Proxies) == 0 {
		return nil, errors.New("no proxy: give --in SPEC --out SPEC or -c FILE (see --help)")
	}
	return s, nil
}

// build makes every proxy's connectors; nothing listens yet.
func (s *settings) build() ([]*nproxy.Proxy, error) {
	proxies := make([]*nproxy.Proxy, len(s.Proxies))
	for i, p := range s.Proxies {
		inKeys := maps.Clone(p["in"].(map[string]any))
		limits, err := takeLimits(inKeys, "'in' connector")
		if err != nil {
			return nil, fmt.Errorf("proxy #%d: %w", i+1, err)
		}
		in, err := connectors.BuildIn("in", inKeys)
		if err != nil {
			return nil, fmt.Errorf("proxy #%d: %w", i+1, err)
		}
		out, err := buildOut(p["out"].(map[string]any))
		if err != nil {
			return nil, fmt.Errorf("proxy #%d: %w", i+1, err)
		}
		proxies[i] = nproxy.New(in, out)
		proxies[i].SetLimits(limits)
	}
	return proxies, nil
}

// apply sets the options of the next Mainloop and registers the proxies.
func (s *settings) apply(proxies []*nproxy.Proxy) {
	nproxy.SetVerbosity(s.Verbosity)
	leaveSpareProc(s.Loops)
	nproxy.SetOptions(nproxy.Options{Loops: s.Loops, BufferSize: s.BufferSize,
		PipeSize: s.PipeSize, NoSplice: s.NoSplice, ConnectTimeout: s.ConnectTimeout, Limits: s.global})
	for _, p := range proxies {
		p.Register()
	}
}
