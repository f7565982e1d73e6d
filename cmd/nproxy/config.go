package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
	"go.yaml.in/yaml/v3"
)

// config is the YAML file's schema; command-line options fill the same
// fields. Unknown keys are errors, so that a typo cannot pass silently.
type config struct {
	Verbosity      *int          `yaml:"verbosity"`
	MaxConnections int           `yaml:"max_connections"`
	Loops          int           `yaml:"loops"`
	BufferSize     *int          `yaml:"buffer_size"`
	PipeSize       int           `yaml:"pipe_size"`
	NoSplice       bool          `yaml:"no_splice"`
	Proxies        []proxyConfig `yaml:"proxies"`

	verbosity int             // -v count, added to Verbosity
	ins       []connectors.In // the in connectors apply built
}

type proxyConfig struct {
	In  map[string]any `yaml:"in"`
	Out map[string]any `yaml:"out"`
}

// maxConfigSize bounds the file read, like every parser here.
const maxConfigSize = 1 << 20

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
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var fileCfg config
	if err := dec.Decode(&fileCfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %s", path, yamlMessage(err))
	}
	for i, p := range fileCfg.Proxies {
		if p.In == nil || p.Out == nil {
			return fmt.Errorf("%s: proxy #%d: 'in' and 'out' connectors required", path, i+1)
		}
	}
	fileCfg.verbosity = c.verbosity
	fileCfg.Proxies = append(c.Proxies, fileCfg.Proxies...)
	*c = fileCfg
	return nil
}

func (c *config) setNumber(option string, n int) {
	switch option {
	case "--max-connections":
		c.MaxConnections = n
	case "--loops":
		c.Loops = n
	case "--buffer-size":
		c.BufferSize = &n
	case "--pipe-size":
		c.PipeSize = n
	}
}

// apply builds and registers every proxy; nothing listens yet.
func (c *config) apply() error {
	v := c.verbosity
	if c.Verbosity != nil {
		v += *c.Verbosity
	}
	nproxy.SetVerbosity(v)
	if c.PipeSize < 0 {
		return fmt.Errorf("pipe_size must not be negative, not %d", c.PipeSize)
	}
	opts := nproxy.Options{Loops: c.Loops, PipeSize: c.PipeSize, NoSplice: c.NoSplice}
	if c.BufferSize != nil {
		opts.BufferSize = *c.BufferSize
		if opts.BufferSize == 0 {
			opts.BufferSize = -1 // Net::Proxy 0.13: 0 is unlimited
		}
	}
	nproxy.SetOptions(opts)
	for i, p := range c.Proxies {
		in, err := connectors.BuildIn("in", p.In)
		if err != nil {
			return fmt.Errorf("proxy #%d: %w", i+1, err)
		}
		out, err := connectors.BuildOut("out", p.Out)
		if err != nil {
			return fmt.Errorf("proxy #%d: %w", i+1, err)
		}
		nproxy.New(in, out).Register()
		c.ins = append(c.ins, in)
	}
	return nil
}

// unknownField matches yaml.v3's report of a key the schema lacks.
var unknownField = regexp.MustCompile(`field (\S+) not found in type main\.(\w+)`)

// yamlMessage makes one line of a YAML error, naming unknown keys in the
// file's own terms rather than Go's.
func yamlMessage(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.ReplaceAll(err.Error(), "\n", " ")
	}
	msgs := make([]string, len(te.Errors))
	for i, e := range te.Errors {
		msgs[i] = unknownField.ReplaceAllStringFunc(e, func(m string) string {
			sub := unknownField.FindStringSubmatch(m)
			where := "at the top level (known: verbosity, max_connections, loops, buffer_size, pipe_size, no_splice, proxies)"
			if sub[2] == "proxyConfig" {
				where = "in a proxy (known: in, out)"
			}
			return fmt.Sprintf("unknown key '%s' %s", sub[1], where)
		})
	}
	return strings.Join(msgs, "; ")
}
