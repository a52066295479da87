package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// platformKinds is the one table of platform types. Adding a platform is a
// settings field on Platform plus one line here, e.g.
//
//	"liveperson": kind(func(p *Platform) **LivePersonPlatform { return &p.LivePerson }),
var platformKinds = map[string]platformKind{
	"standard":   kind(func(p *Platform) **StandardPlatform { return &p.Standard }),
	"liveperson": kind(func(p *Platform) **LivePersonPlatform { return &p.LivePerson }),
}

// platformKind reaches a type's settings field on a Platform.
type platformKind struct {
	alloc func(*Platform) any // sets the field to fresh defaulted settings and returns them
	get   func(*Platform) any // the settings, nil when unset
}

func kind[T any](field func(*Platform) **T) platformKind {
	return platformKind{
		alloc: func(p *Platform) any {
			s := fresh(reflect.TypeFor[T]()).Interface().(*T)
			*field(p) = s
			return s
		},
		get: func(p *Platform) any {
			if s := *field(p); s != nil {
				return s
			}
			return nil
		},
	}
}

// PlatformTypes lists the known platform types, sorted; the adapter registry
// can check itself against it.
func PlatformTypes() []string {
	types := make([]string, 0, len(platformKinds))
	for t := range platformKinds {
		types = append(types, t)
	}
	slices.Sort(types)
	return types
}

// Settings returns the typed settings selected by Type (e.g.
// *StandardPlatform), or nil when the type is unknown or unset.
func (p Platform) Settings() any {
	k, ok := platformKinds[p.Type]
	if !ok {
		return nil
	}
	return k.get(&p)
}

// Format prints the settings rather than their address, and keeps their
// secrets redacted under every verb: for %s or %q, fmt prints a nested
// pointer with all String/Format methods switched off.
func (p Platform) Format(f fmt.State, verb rune) {
	s := p.Settings()
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprintf(f, "config.Platform{Type:%q, Settings:%#v}", p.Type, s)
	case verb == 'v' && f.Flag('+'):
		fmt.Fprintf(f, "{Type:%s Settings:%+v}", p.Type, s)
	default:
		fmt.Fprintf(f, "{%s %v}", p.Type, s)
	}
}

// decodeNode reads type first, then the rest of the entry's keys, flat, into
// that type's settings.
func (p *Platform) decodeNode(d *decoder, n *yaml.Node, path string) {
	entries, ok := d.entries(n, path)
	if !ok {
		return
	}
	typePath := join(path, "type")
	known := strings.Join(PlatformTypes(), ", ")
	i := slices.IndexFunc(entries, func(e entry) bool { return e.key == "type" })
	if i < 0 {
		d.errorf(typePath, "required (known: %s)", known)
		return
	}
	d.record(typePath, entries[i].at)
	before := len(d.errs)
	d.decode(entries[i].valNode, reflect.ValueOf(&p.Type).Elem(), typePath)
	if len(d.errs) > before {
		return
	}
	k, ok := platformKinds[p.Type]
	if !ok {
		if p.Type == "" {
			d.errorf(typePath, "required (known: %s)", known)
		} else {
			d.errorf(typePath, "unknown platform type %q (known: %s)", p.Type, known)
		}
		return
	}
	d.fields(entries, reflect.ValueOf(k.alloc(p)).Elem(), path, "type")
}
