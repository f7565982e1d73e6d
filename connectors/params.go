package connectors

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Decode sets the fields of the connector c (a pointer to a struct) from
// params, Net::Proxy style: each field tagged `param:"name"` takes the value
// of that key. Values may be strings (from the command line) or YAML values;
// both pass the same checks and fail with the same messages.
//
// Field types: string, integers (int, uint and their sized kinds), bool,
// float64, time.Duration (seconds, fractional: "0.5"), []string (a list, or
// a string of items separated by spaces or commas: "h2,http/1.1"),
// []map[string]any and map[string]any (passed through), and In or Out (a
// nested connector: a map with its own "type"). The fields of an embedded
// struct count as the connector's own, so connectors share a set of
// parameters by embedding it (ssl.Params).
//
// Every value is bounded, so that no configuration can ask for the absurd:
//   - an integer is in 0..DefaultMaxInt (and fits its type), a float64 is
//     finite and in the same range;
//   - a time.Duration is finite, above 0 and at most MaxDuration;
//   - a string is a scalar (a map or a list is refused) of at most
//     MaxStringLen bytes; a list has at most MaxListLen items;
//   - a string named "host" or "…_host" is a host: a name, an IPv4 address,
//     or an IPv6 address with or without brackets (which are removed), or
//     "*"; anything else is refused.
//
// Tag options, after the name: "required" (the key must be present), "port"
// (an integer in 1..65535), "min=N" and "max=N" (an int's or float's range,
// or a string's or list's longest length), "zero" (a duration may be 0).
// The "type" key is skipped; unknown keys are an error naming the first few.
// where prefixes messages (nothing when empty).
func Decode(c any, params map[string]any, where string) error {
	err := decode(c, params)
	if err != nil && where != "" {
		err = fmt.Errorf("%s: %w", where, err)
	}
	return err
}

// Limits of every decoded value whose tag does not set its own.
const (
	DefaultMaxInt = 1 << 24
	MaxDuration   = 24 * time.Hour
	MaxStringLen  = 4096
	MaxListLen    = 256
)

func decode(c any, params map[string]any) error {
	v := reflect.ValueOf(c).Elem()
	fields, err := paramFields(v.Type())
	if err != nil {
		return err
	}
	keys := sortedKeys(params)
	var unknown []string
	for _, key := range keys {
		if _, ok := fields[key]; !ok && key != "type" {
			unknown = append(unknown, key)
		}
	}
	if len(unknown) > 0 {
		return unknownKeys(unknown, fields)
	}
	for _, key := range keys {
		if f, ok := fields[key]; ok {
			if err := setField(v.FieldByIndex(f.index), key, params[key], f); err != nil {
				return err
			}
		}
	}
	for _, key := range sortedKeys(fields) {
		if _, ok := params[key]; fields[key].required && !ok {
			return fmt.Errorf("%s parameter is required", key)
		}
	}
	return nil
}

// maxNamed bounds the keys an error line names, so that a file with
// thousands of typos still makes one short line.
const maxNamed = 3

func unknownKeys(unknown []string, fields map[string]paramField) error {
	var b strings.Builder
	b.WriteString("unknown parameter")
	if len(unknown) > 1 {
		b.WriteString("s")
	}
	for i, k := range unknown[:min(len(unknown), maxNamed)] {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " '%s'", Clip(k))
	}
	if len(unknown) > maxNamed {
		fmt.Fprintf(&b, " and %d more", len(unknown)-maxNamed)
	}
	fmt.Fprintf(&b, " (known: %s)", strings.Join(sortedKeys(fields), ", "))
	return errors.New(b.String())
}

type paramField struct {
	index    []int // for FieldByIndex: embedded structs add a level
	required bool
	zero     bool // a duration may be 0
	host     bool
	min, max float64
}

func paramFields(t reflect.Type) (map[string]paramField, error) {
	fields := map[string]paramField{}
	return fields, addParamFields(fields, t, nil)
}

func addParamFields(fields map[string]paramField, t reflect.Type, outer []int) error {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		index := append(append([]int{}, outer...), i)
		tag, ok := sf.Tag.Lookup("param")
		if !ok {
			if sf.Anonymous && sf.Type.Kind() == reflect.Struct {
				if err := addParamFields(fields, sf.Type, index); err != nil {
					return err
				}
			}
			continue
		}
		f, err := parseTag(tag, sf.Type)
		if err != nil {
			return fmt.Errorf("field %s: %w", sf.Name, err)
		}
		f.index = index
		name, _, _ := strings.Cut(tag, ",")
		fields[name] = f
	}
	return nil
}

// parseTag reads a field's options; an option it does not know is a
// programming error, reported rather than silently ignored.
func parseTag(tag string, t reflect.Type) (paramField, error) {
	name, opts, _ := strings.Cut(tag, ",")
	f := paramField{min: 0, max: DefaultMaxInt,
		host: t.Kind() == reflect.String && (name == "host" || strings.HasSuffix(name, "_host"))}
	switch t.Kind() {
	case reflect.String:
		f.max = MaxStringLen
	case reflect.Slice:
		f.max = MaxListLen
	}
	for _, opt := range strings.Split(opts, ",") {
		key, val, hasVal := strings.Cut(opt, "=")
		var err error
		switch {
		case opt == "":
		case opt == "required":
			f.required = true
		case opt == "port":
			f.min, f.max = 1, 65535
		case opt == "zero":
			f.zero = true
		case hasVal && key == "min":
			f.min, err = strconv.ParseFloat(val, 64)
		case hasVal && key == "max":
			f.max, err = strconv.ParseFloat(val, 64)
		default:
			err = fmt.Errorf("unknown param tag option %q", opt)
		}
		if err != nil {
			return f, fmt.Errorf("param tag %q: %w", tag, err)
		}
	}
	return f, nil
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	inType       = reflect.TypeFor[In]()
	outType      = reflect.TypeFor[Out]()
)

func setField(fv reflect.Value, key string, val any, f paramField) error {
	switch {
	case fv.Type() == durationType:
		d, err := toDuration(key, val, f)
		fv.SetInt(int64(d))
		return err
	case fv.Type() == inType || fv.Type() == outType:
		return setConnector(fv, key, val)
	}
	switch fv.Kind() {
	case reflect.String:
		s, err := toString(key, val, f)
		fv.SetString(s)
		return err
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := toInt(key, val, f)
		if err == nil && fv.OverflowInt(n) {
			err = fmt.Errorf("%s %d out of range for its type", key, n)
		}
		if err == nil {
			fv.SetInt(n)
		}
		return err
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := toInt(key, val, f)
		if err == nil && (n < 0 || fv.OverflowUint(uint64(n))) {
			err = fmt.Errorf("%s %d out of range for its type", key, n)
		}
		if err == nil {
			fv.SetUint(uint64(n))
		}
		return err
	case reflect.Bool:
		b, err := toBool(key, val)
		fv.SetBool(b)
		return err
	case reflect.Float64:
		x, err := toFloat(key, val, f)
		fv.SetFloat(x)
		return err
	case reflect.Slice, reflect.Map:
		return setComposite(fv, key, val, f)
	}
	return fmt.Errorf("%s: unsupported parameter type %s", key, fv.Type())
}

func setConnector(fv reflect.Value, key string, val any) error {
	m, ok := val.(map[string]any)
	if !ok {
		return fmt.Errorf("'%s' connector expects a map of parameters, got %s", key, describe(val))
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

func setComposite(fv reflect.Value, key string, val any, f paramField) error {
	switch fv.Interface().(type) {
	case []string:
		list, err := toStrings(key, val, f)
		fv.Set(reflect.ValueOf(list))
		return err
	case []map[string]any:
		list, err := toMaps(key, val, f)
		fv.Set(reflect.ValueOf(list))
		return err
	case map[string]any:
		m, ok := val.(map[string]any)
		if !ok {
			return fmt.Errorf("%s expects a map, got %s", key, describe(val))
		}
		fv.Set(reflect.ValueOf(m))
		return nil
	}
	return fmt.Errorf("%s: unsupported parameter type %s", key, fv.Type())
}

func toStrings(key string, val any, f paramField) ([]string, error) {
	var list []string
	switch x := val.(type) {
	case string:
		list = strings.FieldsFunc(x, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	case []any:
		list = make([]string, 0, min(len(x), MaxListLen))
		for i, e := range x {
			if len(list) > int(f.max) {
				break
			}
			s, ok := scalarString(e)
			if !ok {
				return nil, fmt.Errorf("%s[%d] expects a string, got %s", key, i, describe(e))
			}
			list = append(list, s)
		}
	default:
		return nil, fmt.Errorf("%s expects a list, got %s", key, describe(val))
	}
	if float64(len(list)) > f.max {
		return nil, fmt.Errorf("%s has more than %d items", key, int(f.max))
	}
	return list, nil
}

func toMaps(key string, val any, f paramField) ([]map[string]any, error) {
	x, ok := val.([]any)
	if m, isMap := val.(map[string]any); isMap {
		x, ok = indexedList(m)
	}
	if !ok {
		return nil, fmt.Errorf("%s expects a list of maps, got %s", key, describe(val))
	}
	if float64(len(x)) > f.max {
		return nil, fmt.Errorf("%s has more than %d items", key, int(f.max))
	}
	list := make([]map[string]any, len(x))
	for i, e := range x {
		if list[i], ok = e.(map[string]any); !ok {
			return nil, fmt.Errorf("%s[%d] expects a map, got %s", key, i, describe(e))
		}
	}
	return list, nil
}

func toString(key string, val any, f paramField) (string, error) {
	s, ok := scalarString(val)
	if !ok {
		return "", fmt.Errorf("%s expects a string, got %s", key, describe(val))
	}
	if float64(len(s)) > f.max {
		return "", fmt.Errorf("%s is longer than %d bytes", key, int(f.max))
	}
	if f.host {
		return ParseHost(key, s)
	}
	return s, nil
}

// scalarString is a YAML scalar as the command line would have given it:
// "host: 10" is the string "10".
func scalarString(val any) (string, bool) {
	switch x := val.(type) {
	case string:
		return x, true
	case int, int64, uint64, float64, bool:
		return fmt.Sprint(x), true
	}
	return "", false
}

func toInt(key string, val any, f paramField) (int64, error) {
	var n int64
	var err error
	switch x := val.(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	case string:
		n, err = strconv.ParseInt(strings.TrimSpace(x), 10, 64)
	default:
		err = errors.New("not an integer")
	}
	if err != nil {
		return 0, fmt.Errorf("%s expects an integer, got %s", key, describe(val))
	}
	if float64(n) < f.min || float64(n) > f.max {
		return 0, fmt.Errorf("%s %d out of range (%d-%d)", key, n, int64(f.min), int64(f.max))
	}
	return n, nil
}

// number reads an int, a float or a string holding either.
func number(val any) (float64, bool) {
	switch x := val.(type) {
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		return x, true
	case string:
		n, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return n, err == nil || errors.Is(err, strconv.ErrRange)
	}
	return 0, false
}

func toFloat(key string, val any, f paramField) (float64, error) {
	x, ok := number(val)
	if !ok {
		return 0, fmt.Errorf("%s expects a number, got %s", key, describe(val))
	}
	if math.IsNaN(x) || x < f.min || x > f.max {
		return 0, fmt.Errorf("%s %v out of range (%v-%v)", key, x, f.min, f.max)
	}
	return x, nil
}

// toDuration reads seconds. NaN, infinities and 1e300 are refused here
// rather than turned into a default or an overflowed negative duration.
func toDuration(key string, secs any, f paramField) (time.Duration, error) {
	x, ok := number(secs)
	if !ok {
		return 0, fmt.Errorf("%s expects a number of seconds, got %s", key, describe(secs))
	}
	limit := MaxDuration.Seconds()
	if math.IsNaN(x) || x < 0 || x > limit || (x == 0 && !f.zero) {
		lowest := "above 0"
		if f.zero {
			lowest = "0"
		}
		return 0, fmt.Errorf("%s %v out of range (%s to %v seconds)", key, x, lowest, limit)
	}
	d := time.Duration(x * float64(time.Second))
	if d == 0 && !f.zero {
		return 0, fmt.Errorf("%s %v is below a nanosecond", key, x)
	}
	return d, nil
}

func toBool(key string, val any) (bool, error) {
	switch x := val.(type) {
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
	return false, fmt.Errorf("%s expects a boolean (0/1, true/false), got %s", key, describe(val))
}

// describe names a value in an error message: scalars by their (clipped)
// text, composites by their kind, never by their content.
func describe(val any) string {
	switch x := val.(type) {
	case nil:
		return "nothing"
	case map[string]any, map[any]any:
		return "a map"
	case []any:
		return "a list"
	case string:
		return `"` + Clip(x) + `"`
	}
	if s, ok := scalarString(val); ok {
		return s
	}
	return fmt.Sprintf("a %T", val)
}

// Clip shortens what a message quotes from user input to 40 bytes, and
// escapes what would break its line (newlines, control bytes, invalid
// UTF-8), so that any input makes one short error line.
func Clip(s string) string {
	const most = 40
	if len(s) > most {
		s = s[:most] + "..."
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
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
