package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The YAML is decoded by walking yaml.Node alongside the Go types instead of
// with yaml.Node.Decode, so that every unknown key and every type error is
// reported with its path, and decoding goes on after the first one.

// defaulter is implemented by the types whose fresh values (list elements,
// platform settings) start from defaults, so that YAML only overrides what it
// sets: notify_agents: false must stay false while an absent key stays true.
type defaulter interface{ setDefaults() }

// nodeDecoder is implemented by types whose shape depends on their content
// (a platform's keys depend on its type).
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, path string)
}

var durationType = reflect.TypeFor[time.Duration]()

type decoder struct {
	*collector
	// spans maps each path found in the file to its lines, to sort problems.
	spans   map[string]span
	merging map[*yaml.Node]bool // guards against merge-key cycles
}

func newDecoder(c *collector) *decoder {
	return &decoder{collector: c, spans: map[string]span{}, merging: map[*yaml.Node]bool{}}
}

// entry is one key of a mapping.
type entry struct {
	key     string
	at      span // where the key is written, or merged in with <<
	valNode *yaml.Node
}

// record notes where path is, keeping the first position seen.
func (d *decoder) record(path string, at span) {
	if _, ok := d.spans[path]; !ok {
		d.spans[path] = at
	}
}

// spanOf is the lines from key (or list element) to the end of its value.
// An alias counts as its own line: the content is written elsewhere.
func spanOf(start int, n *yaml.Node) span {
	end := start
	for n != nil {
		end = max(end, n.Line)
		if n.Kind == yaml.AliasNode || len(n.Content) == 0 {
			break
		}
		n = n.Content[len(n.Content)-1]
	}
	return span{start, end}
}

// fresh returns a pointer to a new T with its defaults applied.
func fresh(t reflect.Type) reflect.Value {
	p := reflect.New(t)
	if d, ok := p.Interface().(defaulter); ok {
		d.setDefaults()
	}
	return p
}

// decode sets v from n. A null value (key: or key: ~) keeps the default.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = deref(n)
	if n == nil || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	if v.CanAddr() {
		switch u := v.Addr().Interface().(type) {
		case nodeDecoder:
			u.decodeNode(d, n, path)
			return
		case yaml.Unmarshaler:
			if err := u.UnmarshalYAML(n); err != nil {
				d.errorf(path, "%s", err.Error())
			}
			return
		}
	}
	if v.Type() == durationType {
		d.duration(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if entries, ok := d.entries(n, path); ok {
			d.fields(entries, v, path)
		}
	case reflect.Slice:
		d.list(n, v, path)
	case reflect.Map:
		d.mapping(n, v, path)
	case reflect.Pointer:
		p := fresh(v.Type().Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		d.scalar(n, v, path)
	default:
		panic(fmt.Sprintf("config: no YAML decoding for %s at %s", v.Type(), path))
	}
}

// deref follows aliases and unwraps a document.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil {
		switch n.Kind {
		case yaml.AliasNode:
			n = n.Alias
		case yaml.DocumentNode:
			if len(n.Content) == 0 {
				return nil
			}
			n = n.Content[0]
		default:
			return n
		}
	}
	return nil
}

// entries lists the keys of a mapping, merge keys (<<) expanded, reporting
// duplicates and non-mappings.
func (d *decoder) entries(n *yaml.Node, path string) ([]entry, bool) {
	if n.Kind != yaml.MappingNode {
		d.errorf(path, "expected a mapping, got %s", describe(n))
		return nil, false
	}
	var own []entry
	var merges []entry
	seen := map[string]int{} // key → line
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, entry{at: spanOf(k.Line, val), valNode: val})
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(path, "line %d: a key must be a plain string", k.Line)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(join(path, k.Value), "duplicate key (first on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		own = append(own, entry{k.Value, spanOf(k.Line, val), val})
	}
	// Keys written in the mapping win over merged ones; among merged
	// mappings the first wins (YAML merge key semantics).
	for _, me := range merges {
		m := deref(me.valNode)
		srcs := []*yaml.Node{m}
		if m != nil && m.Kind == yaml.SequenceNode {
			srcs = m.Content
		}
		for _, src := range srcs {
			src = deref(src)
			if src == nil || src.Kind != yaml.MappingNode {
				d.errorf(path, "<< must merge a mapping or a list of mappings")
				continue
			}
			if d.merging[src] {
				d.errorf(path, "<< merges a mapping into itself")
				continue
			}
			d.merging[src] = true
			merged, _ := d.entries(src, path)
			delete(d.merging, src)
			for _, e := range merged {
				if _, dup := seen[e.key]; !dup {
					seen[e.key] = e.at.start
					e.at = me.at // problems show where the merge is
					own = append(own, e)
				}
			}
		}
	}
	return own, true
}

// fields decodes entries onto the struct v. Keys in handled were decoded by
// the caller; they are skipped but listed as known.
func (d *decoder) fields(entries []entry, v reflect.Value, path string, handled ...string) {
	names := fieldNames(v.Type())
	for _, e := range entries {
		p := join(path, e.key)
		d.record(p, e.at)
		if slices.Contains(handled, e.key) {
			continue
		}
		i, ok := names[e.key]
		if !ok {
			known := slices.Concat(handled, keysOf(names))
			slices.Sort(known)
			d.errorf(p, "unknown key (known: %s)", strings.Join(known, ", "))
			continue
		}
		d.decode(e.valNode, v.Field(i), p)
	}
}

func (d *decoder) list(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(path, "expected a list, got %s", describe(n))
		return
	}
	// A list in the file replaces the default list; each element starts from
	// its own defaults.
	s := reflect.MakeSlice(v.Type(), 0, len(n.Content))
	for i, el := range n.Content {
		p := index(path, i)
		d.record(p, spanOf(el.Line, el))
		e := fresh(v.Type().Elem()).Elem()
		d.decode(el, e, p)
		s = reflect.Append(s, e)
	}
	v.Set(s)
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	entries, ok := d.entries(n, path)
	if !ok {
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(entries))
	for _, e := range entries {
		p := join(path, e.key)
		d.record(p, e.at)
		val := fresh(v.Type().Elem()).Elem()
		d.decode(e.valNode, val, p)
		m.SetMapIndex(reflect.ValueOf(e.key).Convert(v.Type().Key()), val)
	}
	v.Set(m)
}

func (d *decoder) scalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(path, "expected %s, got %s", expected(v.Kind()), describe(n))
		return
	}
	if v.Kind() == reflect.String {
		// Like yaml.v3: a number or boolean is taken as written (client_id: 0123).
		v.SetString(n.Value)
		return
	}
	// yaml.v3 would truncate 6.5 into an int; a count must be written as one.
	isInt := v.CanInt() || v.CanUint()
	p := reflect.New(v.Type())
	if err := n.Decode(p.Interface()); err != nil || isInt && n.ShortTag() != "!!int" {
		d.errorf(path, "expected %s, got %s", expected(v.Kind()), describe(n))
		return
	}
	v.Set(p.Elem())
}

func (d *decoder) duration(n *yaml.Node, v reflect.Value, path string) {
	const want = "a duration such as 30s, 10m or 1h30m"
	if n.Kind != yaml.ScalarNode {
		d.errorf(path, "expected %s, got %s", want, describe(n))
		return
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		d.errorf(path, "expected %s, got %s", want, describe(n))
		return
	}
	v.SetInt(int64(dur))
}

func expected(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	default:
		return "a string"
	}
}

// describe names what a node is for a message; scalars are quoted and
// shortened.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	s := n.Value
	if r := []rune(s); len(r) > 40 {
		s = string(r[:40]) + "…"
	}
	return fmt.Sprintf("%q", s)
}

// fieldNames maps the YAML keys of a struct type to field indexes.
func fieldNames(t reflect.Type) map[string]int {
	names := map[string]int{}
	for i := range t.NumField() {
		if name, ok := yamlName(t.Field(i)); ok {
			names[name] = i
		}
	}
	return names
}

// yamlName is a field's YAML key; false for unexported and yaml:"-" fields.
func yamlName(f reflect.StructField) (string, bool) {
	if !f.IsExported() {
		return "", false
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	switch name {
	case "-":
		return "", false
	case "":
		return strings.ToLower(f.Name), true
	}
	return name, true
}

func keysOf(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}
