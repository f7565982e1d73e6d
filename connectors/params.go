package connectors

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Decode sets the fields of the connector c (a pointer to a struct) from
// params, Net::Proxy style: each field tagged `param:"name"` takes the value
// of that key. Values may be strings (from the command line) or YAML values.
// Tag options: "required" (the key must be present), "port" (an integer in
// 1..65535). Field types: string, int, bool, float64, time.Duration (seconds,
// fractional: "0.5"), []string (a list, or a string of space-separated
// items), []map[string]any and map[string]any (passed through), and In or
// Out (a nested connector: a map with its own "type"). The fields of an
// embedded struct count as the connector's own, so connectors share a set of
// parameters by embedding it (ssl.Params). The "type" key is skipped; any
// other unknown key is an error naming it. where prefixes messages.
func Decode(c any, params map[string]any, where string) error {
	v := reflect.ValueOf(c).Elem()
	fields := paramFields(v.Type())
	for _, key := range sortedKeys(params) {
		if key == "type" {
			continue
		}
		f, ok := fields[key]
		if !ok {
			return fmt.Errorf("%s: unknown parameter '%s' (known: %s)", where, key, strings.Join(knownKeys(fields), ", "))
		}
		if err := setField(v.FieldByIndex(f.index), key, params[key], f); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	for key, f := range fields {
		if _, ok := params[key]; f.required && !ok {
			return fmt.Errorf("%s: %s parameter is required", where, key)
		}
	}
	return nil
}

type paramField struct {
	index    []int // for FieldByIndex: embedded structs add a level
	required bool
	port     bool
}

func paramFields(t reflect.Type) map[string]paramField {
	fields := map[string]paramField{}
	addParamFields(fields, t, nil)
	return fields
}

func addParamFields(fields map[string]paramField, t reflect.Type, outer []int) {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		index := append(append([]int{}, outer...), i)
		tag, ok := sf.Tag.Lookup("param")
		if !ok {
			if sf.Anonymous && sf.Type.Kind() == reflect.Struct {
				addParamFields(fields, sf.Type, index)
			}
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		fields[name] = paramField{
			index:    index,
			required: strings.Contains(opts, "required"),
			port:     strings.Contains(opts, "port"),
		}
	}
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	inType       = reflect.TypeFor[In]()
	outType      = reflect.TypeFor[Out]()
)

func setField(fv reflect.Value, key string, val any, f paramField) error {
	switch {
	case fv.Type() == durationType:
		secs, err := toFloat(val)
		if err != nil || secs < 0 {
			return fmt.Errorf("%s must be a number of seconds, not %q", key, fmt.Sprint(val))
		}
		fv.SetInt(int64(secs * float64(time.Second)))
		return nil
	case fv.Type() == inType || fv.Type() == outType:
		return setConnector(fv, key, val)
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(fmt.Sprint(val))
	case reflect.Int:
		n, err := toInt(val)
		if err != nil {
			return fmt.Errorf("%s must be an integer, not %q", key, fmt.Sprint(val))
		}
		if f.port && (n < 1 || n > 65535) {
			return fmt.Errorf("%s %d out of range (1-65535)", key, n)
		}
		fv.SetInt(int64(n))
	case reflect.Bool:
		b, err := toBool(val)
		if err != nil {
			return fmt.Errorf("%s must be a boolean (0/1, true/false), not %q", key, fmt.Sprint(val))
		}
		fv.SetBool(b)
	case reflect.Float64:
		x, err := toFloat(val)
		if err != nil {
			return fmt.Errorf("%s must be a number, not %q", key, fmt.Sprint(val))
		}
		fv.SetFloat(x)
	case reflect.Slice, reflect.Map:
		return setComposite(fv, key, val)
	default:
		return fmt.Errorf("%s: unsupported parameter type %s", key, fv.Type())
	}
	return nil
}

func setConnector(fv reflect.Value, key string, val any) error {
	m, ok := val.(map[string]any)
	if !ok {
		return fmt.Errorf("'%s' connector must be a map of parameters", key)
	}
	side := SideOut
	if fv.Type() == inType {
		side = SideIn
	}
	c, err := Build(side, key, m)
	if err != nil {
		return err
	}
	cv := reflect.ValueOf(c)
	if !cv.Type().Implements(fv.Type()) {
		return fmt.Errorf("'%s' connector of this type cannot be used here", key)
	}
	fv.Set(cv)
	return nil
}

func setComposite(fv reflect.Value, key string, val any) error {
	switch fv.Interface().(type) {
	case []string:
		switch x := val.(type) {
		case string:
			fv.Set(reflect.ValueOf(strings.Fields(x)))
		case []any:
			list := make([]string, len(x))
			for i, e := range x {
				list[i] = fmt.Sprint(e)
			}
			fv.Set(reflect.ValueOf(list))
		default:
			return fmt.Errorf("%s must be a list", key)
		}
	case []map[string]any:
		x, ok := val.([]any)
		if m, isMap := val.(map[string]any); isMap {
			x, ok = indexedList(m)
		}
		if !ok {
			return fmt.Errorf("%s must be a list of maps", key)
		}
		list := make([]map[string]any, len(x))
		for i, e := range x {
			if list[i], ok = e.(map[string]any); !ok {
				return fmt.Errorf("%s[%d] must be a map", key, i)
			}
		}
		fv.Set(reflect.ValueOf(list))
	case map[string]any:
		m, ok := val.(map[string]any)
		if !ok {
			return fmt.Errorf("%s must be a map", key)
		}
		fv.Set(reflect.ValueOf(m))
	default:
		return fmt.Errorf("%s: unsupported parameter type %s", key, fv.Type())
	}
	return nil
}

func toInt(v any) (int, error) {
	switch x := v.(type) {
	case int:
		return x, nil
	case string:
		return strconv.Atoi(strings.TrimSpace(x))
	}
	return 0, fmt.Errorf("not an integer")
}

func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case int:
		return float64(x), nil
	case float64:
		return x, nil
	case string:
		return strconv.ParseFloat(strings.TrimSpace(x), 64)
	}
	return 0, fmt.Errorf("not a number")
}

func toBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case int:
		return x != 0, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "1", "true", "yes", "on":
			return true, nil
		case "0", "false", "no", "off", "":
			return false, nil
		}
	}
	return false, fmt.Errorf("not a boolean")
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func knownKeys(fields map[string]paramField) []string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// indexedList turns the map that dotted keys make of a list
// ("probes.0.type=ssh,probes.1.type=any") into that list, in index order.
func indexedList(m map[string]any) ([]any, bool) {
	list := make([]any, len(m))
	for k, v := range m {
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i >= len(m) || list[i] != nil {
			return nil, false
		}
		list[i] = v
	}
	return list, true
}
