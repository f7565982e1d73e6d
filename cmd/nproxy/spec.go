package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nproxy/nproxy/connectors"
)

// Limits of a SPEC: far above any real one, low enough that a mistaken
// argument (a file pasted in) fails at once.
const (
	maxSpecLen  = 64 << 10
	maxKeyDepth = 8
	maxRepeats  = 256
)

// parseSpec reads "key=value,key=value" into the map Decode takes. Dotted
// keys nest: "server_first.port=22" sets port in the server_first map. A
// value with commas is quoted, "SSL_alpn=\"h2,http/1.1\"" (double or single
// quotes; a backslash escapes the quote or itself), or its key repeated,
// "SSL_alpn=h2,SSL_alpn=http/1.1": a repeated key makes a list.
func parseSpec(spec string) (map[string]any, error) {
	if len(spec) > maxSpecLen {
		return nil, fmt.Errorf("longer than %d bytes", maxSpecLen)
	}
	m := map[string]any{}
	for rest := spec; rest != ""; {
		item, key, value, next, err := nextItem(rest)
		if err != nil {
			return nil, err
		}
		rest = next
		if item == "" {
			continue
		}
		if key == "" {
			return nil, fmt.Errorf("%q is not key=value", connectors.Clip(item))
		}
		path := strings.Split(key, ".")
		if len(path) > maxKeyDepth {
			return nil, fmt.Errorf("%s: more than %d levels", connectors.Clip(key), maxKeyDepth)
		}
		if err := setPath(m, path, value); err != nil {
			return nil, fmt.Errorf("%s: %w", connectors.Clip(key), err)
		}
	}
	return m, nil
}

// nextItem splits the first key=value off s. item is the raw text, for
// messages; key is empty when there is no '='.
func nextItem(s string) (item, key, value, rest string, err error) {
	eq := strings.IndexAny(s, "=,")
	if eq < 0 || s[eq] == ',' {
		item, rest, _ = strings.Cut(s, ",")
		return item, "", "", rest, nil
	}
	key = s[:eq]
	after := s[eq+1:]
	if after == "" || (after[0] != '"' && after[0] != '\'') {
		value, rest, _ = strings.Cut(after, ",")
		return s[:eq+1] + value, key, value, rest, nil
	}
	value, n, err := unquote(after)
	if err != nil {
		return "", "", "", "", fmt.Errorf("%s: %w", connectors.Clip(key), err)
	}
	rest = after[n:]
	if rest != "" && rest[0] != ',' {
		return "", "", "", "", fmt.Errorf("%s: a quoted value must end at a comma", connectors.Clip(key))
	}
	return s[:eq+1+n], key, value, strings.TrimPrefix(rest, ","), nil
}

// unquote reads a quoted value at the start of s and returns it and the
// length of its quoted form.
func unquote(s string) (string, int, error) {
	quote := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == quote:
			return b.String(), i + 1, nil
		case c == '\\' && i+1 < len(s) && (s[i+1] == quote || s[i+1] == '\\'):
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, errors.New("quote not closed")
}

func setPath(m map[string]any, path []string, value string) error {
	for _, k := range path[:len(path)-1] {
		sub, ok := m[k].(map[string]any)
		if !ok {
			if _, exists := m[k]; exists {
				return fmt.Errorf("%s is both a value and a connector", connectors.Clip(k))
			}
			sub = map[string]any{}
			m[k] = sub
		}
		m = sub
	}
	last := path[len(path)-1]
	switch old := m[last].(type) {
	case nil:
		m[last] = value
	case string:
		m[last] = []any{old, value}
	case []any:
		if len(old) >= maxRepeats {
			return fmt.Errorf("given more than %d times", maxRepeats)
		}
		m[last] = append(old, value)
	default:
		return fmt.Errorf("%s is both a value and a connector", connectors.Clip(last))
	}
	return nil
}
