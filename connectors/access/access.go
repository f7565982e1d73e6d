// Package access holds what front doors (socks5 and connect in) check before
// they open a destination for a client: allow rules and user credentials.
//
//	rules, _ := access.ParseRules([]string{"10.0.0.0/8:*", "*.example.com:443;*:8000-8100"})
//	rules.Permit("www.example.com", 443) // true
//	users, _ := access.LoadUsers(map[string]any{"alice": "s3cret"}, "")
//	users.Check("alice", "s3cret") // true
package access

import (
	"bufio"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Rule permits the destinations whose host matches Net and whose port is
// within [Low, High].
type Rule struct {
	// Prefix matches IP destinations; valid when the rule's NET is a CIDR.
	Prefix netip.Prefix
	// Pattern matches names: "example.com", or "*.example.com" for its
	// subdomains; "*" matches any destination.
	Pattern   string
	Low, High int
}

// Rules are allow rules; a destination is permitted when one rule matches.
type Rules []Rule

// ParseRules parses rules of the form NET:PORTS, each item of list possibly
// holding several separated by ';' (the command line's allow=a;b). NET is a
// CIDR, an address, a name pattern or "*"; PORTS a port, a range LOW-HIGH or
// "*".
func ParseRules(list []string) (Rules, error) {
	var rules Rules
	for _, item := range list {
		for _, s := range strings.Split(item, ";") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			r, err := parseRule(s)
			if err != nil {
				return nil, fmt.Errorf("allow rule %q: %w", s, err)
			}
			rules = append(rules, r)
		}
	}
	return rules, nil
}

func parseRule(s string) (Rule, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return Rule{}, errors.New("want NET:PORTS")
	}
	var r Rule
	var err error
	if r.Low, r.High, err = parsePorts(s[i+1:]); err != nil {
		return Rule{}, err
	}
	net := strings.TrimSuffix(strings.TrimPrefix(s[:i], "["), "]")
	if strings.ContainsRune(net, '/') {
		p, err := netip.ParsePrefix(net)
		if err != nil {
			return Rule{}, err
		}
		r.Prefix = p.Masked()
		return r, nil
	}
	if a, err := netip.ParseAddr(net); err == nil {
		r.Prefix = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		return r, nil
	}
	if net == "" || strings.ContainsAny(net, " /:") || strings.Contains(net[1:], "*") || net[0] == '*' && net != "*" && !strings.HasPrefix(net, "*.") {
		return Rule{}, fmt.Errorf("%q is not a CIDR, a name pattern or *", net)
	}
	r.Pattern = strings.ToLower(net)
	return r, nil
}

func parsePorts(s string) (low, high int, err error) {
	if s == "*" {
		return 1, 65535, nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	if low, err = strconv.Atoi(lo); err != nil || low < 1 || low > 65535 {
		return 0, 0, fmt.Errorf("bad port %q", lo)
	}
	high = low
	if isRange {
		if high, err = strconv.Atoi(hi); err != nil || high < low || high > 65535 {
			return 0, 0, fmt.Errorf("bad port range %q", s)
		}
	}
	return low, high, nil
}

// Permit reports whether a client may go to host:port. An IP host matches
// CIDR rules, a name matches name patterns: names are not resolved here
// (resolution happens off the loop, when the server is reached).
func (rs Rules) Permit(host string, port int) bool {
	a, err := netip.ParseAddr(host)
	isIP := err == nil
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, r := range rs {
		if port < r.Low || port > r.High {
			continue
		}
		switch {
		case r.Pattern == "*":
			return true
		case r.Prefix.IsValid():
			if isIP && r.Prefix.Contains(a.Unmap()) {
				return true
			}
		case !isIP && matchName(r.Pattern, host):
			return true
		}
	}
	return false
}

func matchName(pattern, host string) bool {
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return strings.HasSuffix(host, suffix) && len(host) > len(suffix)
	}
	return host == pattern
}

// Users maps user names to passwords.
type Users map[string]string

// LoadUsers merges users given as a map (YAML, or users.NAME=PASS on the
// command line) with those of file, one "user:password" a line (blank lines
// and lines starting with # are skipped). No users means no authentication.
func LoadUsers(m map[string]any, file string) (Users, error) {
	users := Users{}
	for name, pass := range m {
		users[name] = fmt.Sprint(pass)
	}
	if file == "" {
		return users, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, pass, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("%s:%d: want user:password", file, n)
		}
		users[name] = pass
	}
	return users, sc.Err()
}

// Check reports whether pass is user's password, in time that does not
// depend on how much of it is right.
func (u Users) Check(user, pass string) bool {
	want, ok := u[user]
	if !ok {
		want = "\x00nobody" // compare all the same: the time tells nothing
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(pass)) == 1 && ok
}

// Control is the access parameters of a front door (socks5 and connect in),
// embedded in its connector: users (a map, or users.NAME=PASS on the
// command line, and a file) and allow rules.
type Control struct {
	// Users, if any (with those of UsersFile), must authenticate; without
	// any, clients need no credentials.
	Users map[string]any `param:"users"`
	// UsersFile holds more users, one "user:password" a line.
	UsersFile string `param:"users_file"`
	// Allow lists the destinations permitted, as NET:PORTS rules (see
	// ParseRules); empty means the connector's default.
	Allow []string `param:"allow"`

	users Users
	rules Rules
}

// Load reads the users and parses the rules, with defaultAllow when Allow
// is empty.
func (c *Control) Load(defaultAllow string) error {
	var err error
	if c.users, err = LoadUsers(c.Users, c.UsersFile); err != nil {
		return err
	}
	allow := c.Allow
	if len(allow) == 0 {
		allow = []string{defaultAllow}
	}
	c.rules, err = ParseRules(allow)
	return err
}

// NeedsAuth reports whether clients must authenticate.
func (c *Control) NeedsAuth() bool { return len(c.users) > 0 }

// Authenticate reports whether user and pass are a user's (see Users.Check).
func (c *Control) Authenticate(user, pass string) bool { return c.users.Check(user, pass) }

// Permit reports whether the rules let a client go to host:port.
func (c *Control) Permit(host string, port int) bool { return c.rules.Permit(host, port) }
