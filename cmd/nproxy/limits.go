package main

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/nproxy/nproxy"
	"github.com/nproxy/nproxy/connectors"
)

// limitParams are the limits, as keys of a proxy's in side (maxconn=10 on
// --in) or of the file's top level (every proxy together).
type limitParams struct {
	MaxConn      int           `param:"maxconn,max=10000000"`
	MaxPerSource int           `param:"max_per_source,max=10000000"`
	IdleTimeout  time.Duration `param:"idle_timeout"`
	Allow        []string      `param:"allow"`
	Deny         []string      `param:"deny"`
}

// limitKeys are limitParams' keys, which the in connector does not see.
var limitKeys = []string{"maxconn", "max_per_source", "idle_timeout", "allow", "deny"}

// takeKeys moves the keys named from m to the map it returns: keys of
// nproxy's own, which the connector would refuse as unknown.
func takeKeys(m map[string]any, names []string) map[string]any {
	taken := map[string]any{}
	for _, k := range names {
		if v, ok := m[k]; ok {
			taken[k] = v
			delete(m, k)
		}
	}
	return taken
}

// takeLimits removes the limit keys from in and decodes them, but for a
// key the connector has itself (socks5's and connect's allow rules).
func takeLimits(in map[string]any, where string) (nproxy.Limits, error) {
	var p limitParams
	typ, _ := in["type"].(string)
	var keys []string
	for _, k := range limitKeys {
		if !connectors.HasParam(connectors.SideIn, typ, k) {
			keys = append(keys, k)
		}
	}
	if err := connectors.Decode(&p, takeKeys(in, keys), where); err != nil {
		return nproxy.Limits{}, err
	}
	return p.limits(where)
}

func (p limitParams) limits(where string) (nproxy.Limits, error) {
	allow, err := prefixes(p.Allow, "allow")
	var deny []netip.Prefix
	if err == nil {
		deny, err = prefixes(p.Deny, "deny")
	}
	if err != nil && where != "" {
		err = fmt.Errorf("%s: %w", where, err)
	}
	return nproxy.Limits{MaxConn: p.MaxConn, MaxPerSource: p.MaxPerSource,
		IdleTimeout: p.IdleTimeout, Allow: allow, Deny: deny}, err
}

// prefixes reads CIDR prefixes; a bare address is its own /32 or /128.
func prefixes(list []string, key string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an address or a CIDR prefix", key, connectors.Clip(s))
		}
		if pfx.Addr().Is4In6() {
			pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
		}
		out = append(out, pfx.Masked())
	}
	return out, nil
}
