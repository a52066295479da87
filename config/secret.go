package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Every way of printing or encoding a Secret shows its reference (${NAME},
// file:/path) or [redacted], never the value.
var (
	_ fmt.Stringer     = Secret{}
	_ fmt.GoStringer   = Secret{}
	_ fmt.Formatter    = Secret{}
	_ slog.LogValuer   = Secret{}
	_ json.Marshaler   = Secret{}
	_ yaml.Marshaler   = Secret{}
	_ yaml.Unmarshaler = (*Secret)(nil)
)

const redacted = "[redacted]"

// maxSecretFile bounds a secret file so that a path to something large (a
// log, a device) fails instead of being read whole.
const maxSecretFile = 64 << 10

var (
	envRef     = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)
	bareEnvRef = regexp.MustCompile(`^\$[A-Za-z_][A-Za-z0-9_]*$`)
)

// IsSet reports whether the secret has a (resolved) value.
func (s Secret) IsSet() bool { return s.Value != "" }

// isReference reports whether Ref names where the value comes from, which is
// safe to show, rather than being the value itself.
func (s Secret) isReference() bool {
	return envRef.MatchString(s.Ref) || strings.HasPrefix(s.Ref, "file:")
}

// String is the reference, "[redacted]" for an inline value, or "" when unset.
func (s Secret) String() string {
	switch {
	case s.isReference():
		return s.Ref
	case s.Ref == "" && s.Value == "":
		return ""
	}
	return redacted
}

// GoString keeps %#v of a whole Config safe.
func (s Secret) GoString() string {
	switch {
	case s.isReference():
		return fmt.Sprintf("config.Secret{Ref: %q}", s.Ref)
	case s.Ref == "" && s.Value == "":
		return "config.Secret{}"
	}
	return "config.Secret{/* redacted */}"
}

// Format covers the verbs String and GoString do not (%d, %x on a struct
// would print the fields).
func (s Secret) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		io.WriteString(f, s.GoString())
	case verb == 'q':
		fmt.Fprintf(f, "%q", s.String())
	default:
		io.WriteString(f, s.String())
	}
}

// LogValue keeps slog output safe whatever the handler.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON keeps a JSON dump of the configuration safe.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalYAML keeps a YAML dump safe; references survive a round trip.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// UnmarshalYAML keeps what the file says in Ref; Load resolves Value.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected ${NAME}, file:/path or an inline string, got %s", describe(n))
	}
	*s = Secret{}
	if n.ShortTag() != "!!null" {
		s.Ref = n.Value
	}
	return nil
}

var (
	secretType   = reflect.TypeFor[Secret]()
	platformType = reflect.TypeFor[Platform]()
)

// resolver fills in every Secret's Value from its Ref.
type resolver struct {
	*collector
	env      func(string) (string, bool)
	readFile func(string) ([]byte, error)
}

// walk finds the secrets under v, by reflection so that a new secret field
// (or platform) needs no code here.
func (r *resolver) walk(v reflect.Value, path string) {
	switch v.Type() {
	case secretType:
		r.resolve(v.Addr().Interface().(*Secret), path)
		return
	case platformType:
		// Settings are flat under the platform entry.
		if s := v.Interface().(Platform).Settings(); s != nil {
			r.walk(reflect.ValueOf(s).Elem(), path)
		}
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if name, ok := yamlName(v.Type().Field(i)); ok {
				r.walk(v.Field(i), join(path, name))
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			r.walk(v.Index(i), index(path, i))
		}
	case reflect.Pointer:
		if !v.IsNil() {
			r.walk(v.Elem(), path)
		}
	}
}

func (r *resolver) resolve(s *Secret, path string) {
	ref := s.Ref
	s.Value = ""
	switch {
	case ref == "":
	case strings.HasPrefix(ref, "${"):
		m := envRef.FindStringSubmatch(ref)
		if m == nil {
			r.errorf(path, "malformed environment reference; write ${NAME} as the whole value")
			return
		}
		val, ok := r.env(m[1])
		switch {
		case !ok:
			r.errorf(path, "environment variable %s is not set", m[1])
		case val == "":
			r.errorf(path, "environment variable %s is empty", m[1])
		default:
			s.Value = val
		}
	case strings.HasPrefix(ref, "file:"):
		name := strings.TrimPrefix(ref, "file:")
		if !filepath.IsAbs(name) {
			r.errorf(path, "secret file %q must be an absolute path", name)
			return
		}
		data, err := r.readFile(name)
		if err != nil {
			// The reason only (not found, permission denied): never content.
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			r.errorf(path, "cannot read secret file %s: %v", name, err)
			return
		}
		val := string(data)
		if v, ok := strings.CutSuffix(val, "\r\n"); ok {
			val = v
		} else {
			val = strings.TrimSuffix(val, "\n")
		}
		if val == "" {
			r.errorf(path, "secret file %s is empty", name)
			return
		}
		s.Value = val
	case bareEnvRef.MatchString(ref):
		s.Value = ref
		r.warnf(path, "inline secret that looks like an environment reference; write ${NAME} to read the environment")
	default:
		s.Value = ref
		r.warnf(path, "inline secret; prefer ${ENV} or file:")
	}
}

var errSecretTooLarge = fmt.Errorf("larger than %d KiB", maxSecretFile>>10)

// readSecretFile reads at most maxSecretFile bytes.
func readSecretFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSecretFile {
		return nil, errSecretTooLarge
	}
	return data, nil
}
