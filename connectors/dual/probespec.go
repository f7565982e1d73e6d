package dual

import (
	"fmt"
	"maps"
	"regexp"

	"github.com/nproxy/nproxy/connectors"
)

// regexParams are a regex probe's parameters; the pattern is compiled once.
type regexParams struct {
	Pattern string `param:"pattern,required"`
	Min     int    `param:"min"`
}

// buildRoute makes the route of the i-th configured probe: its "type", its
// own parameters, and its "out", a connector or the name of one of dual's.
func (c *In) buildRoute(i int, spec map[string]any) (Route, error) {
	where := fmt.Sprintf("probes[%d]", i)
	kind, _ := spec["type"].(string)
	where += " (" + kind + ")"
	params := maps.Clone(spec)
	delete(params, "out")
	probe, err := buildProbe(kind, params, where)
	if err != nil {
		return Route{}, err
	}
	out, err := c.routeOut(spec["out"], where)
	if err != nil {
		return Route{}, err
	}
	return Route{Probe: probe, Out: out}, nil
}

func buildProbe(kind string, params map[string]any, where string) (Probe, error) {
	switch kind {
	case "ssh":
		return SSH{}, connectors.Decode(&SSH{}, params, where)
	case "any":
		return Any{}, connectors.Decode(&Any{}, params, where)
	case "tls":
		var p TLS
		err := connectors.Decode(&p, params, where)
		return p, err
	case "http":
		var p HTTP
		err := connectors.Decode(&p, params, where)
		return p, err
	case "regex":
		var p regexParams
		if err := connectors.Decode(&p, params, where); err != nil {
			return nil, err
		}
		re, err := regexp.Compile(p.Pattern)
		if err != nil {
			return nil, fmt.Errorf("%s: pattern: %s", where, connectors.Clip(err.Error()))
		}
		if p.Min < 0 || p.Min > DefaultMaxProbeBytes {
			return nil, fmt.Errorf("%s: min %d out of range (0-%d)", where, p.Min, DefaultMaxProbeBytes)
		}
		return Regex{RE: re, Min: p.Min}, nil
	}
	return nil, fmt.Errorf("%s: 'type' must be one of ssh, tls, http, regex, any", where)
}

// routeOut reads a probe's "out": a connector's parameters, or
// "server_first"/"client_first" for the connector dual already has.
func (c *In) routeOut(v any, where string) (connectors.Out, error) {
	switch x := v.(type) {
	case map[string]any:
		return connectors.BuildOut(where+" out", x)
	case string:
		switch x {
		case "server_first":
			return c.ServerFirst, nil
		case "client_first":
			return c.ClientFirst, nil
		}
	case nil:
		return nil, fmt.Errorf("%s: 'out' is required (a connector, server_first or client_first)", where)
	}
	return nil, fmt.Errorf("%s: 'out' must be a connector, server_first or client_first, not \"%s\"", where, connectors.Clip(fmt.Sprint(v)))
}

// probeName names a probe in log messages.
func probeName(p Probe) string {
	switch p.(type) {
	case SSH:
		return "ssh"
	case TLS:
		return "tls"
	case HTTP:
		return "http"
	case Regex:
		return "regex"
	case Any:
		return "any"
	}
	return fmt.Sprintf("%T", p)
}
