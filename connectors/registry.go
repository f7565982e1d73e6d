package connectors

import (
	"fmt"
	"reflect"
	"sort"
	"sync"
)

// Factory makes a fresh connector of one type, with its defaults, ready for
// Build to fill from parameters. It returns nil for a side the type cannot
// serve (Net::Proxy's N/A).
type Factory func(side Side) any

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes a connector type known by name. Connector packages call it
// from init.
func Register(typ string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[typ]; dup {
		panic("connectors: type " + typ + " registered twice")
	}
	factories[typ] = f
}

// Types lists the registered type names, sorted.
func Types() []string {
	mu.RLock()
	defer mu.RUnlock()
	var names []string
	for n := range factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Validator is implemented by connectors that check their parameters as a
// whole once Build has set them, for rules a single field cannot express.
type Validator interface {
	Validate() error
}

// Build makes the connector described by params for side: params["type"]
// names the connector, the other keys are its parameters (see Decode). role
// names the connector in messages: "in", "out", or a nested one such as
// "server_first".
func Build(side Side, role string, params map[string]any) (any, error) {
	typ, ok := params["type"]
	if !ok {
		return nil, fmt.Errorf("'type' key required for '%s' connector", role)
	}
	name, ok := typ.(string)
	if !ok {
		return nil, fmt.Errorf("'type' of '%s' connector must be a string", role)
	}
	mu.RLock()
	f := factories[name]
	mu.RUnlock()
	if f == nil {
		return nil, fmt.Errorf("unknown type '%s' for '%s' connector (known: %v)", Clip(name), role, Types())
	}
	c := f(side)
	if c == nil {
		return nil, fmt.Errorf("connector type '%s' cannot be used as '%s' connector", name, side)
	}
	where := fmt.Sprintf("'%s' connector (%s)", role, name)
	if err := Decode(c, params, where); err != nil {
		return nil, err
	}
	if v, ok := c.(Validator); ok {
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	}
	return c, nil
}

// BuildIn builds an In connector (see Build).
func BuildIn(role string, params map[string]any) (In, error) {
	c, err := Build(SideIn, role, params)
	if err != nil {
		return nil, err
	}
	in, ok := c.(In)
	if !ok {
		return nil, fmt.Errorf("'%s' connector cannot listen", role)
	}
	return in, nil
}

// BuildOut builds an Out connector (see Build).
func BuildOut(role string, params map[string]any) (Out, error) {
	c, err := Build(SideOut, role, params)
	if err != nil {
		return nil, err
	}
	out, ok := c.(Out)
	if !ok {
		return nil, fmt.Errorf("'%s' connector cannot connect out", role)
	}
	return out, nil
}

// HasParam reports whether the connector type typ, on side, has a
// parameter named key: the command leaves such a key to the connector
// rather than reading it as a setting of its own (socks5's allow rules are
// destinations, the in side's allow limit is client addresses).
func HasParam(side Side, typ, key string) bool {
	mu.RLock()
	f := factories[typ]
	mu.RUnlock()
	if f == nil {
		return false
	}
	c := f(side)
	if c == nil {
		return false
	}
	fields, err := paramFields(reflect.TypeOf(c).Elem())
	_, ok := fields[key]
	return err == nil && ok
}
