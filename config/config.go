package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"

	"gopkg.in/yaml.v3"
)

// Load reads and checks the configuration file at path, with secrets from
// the process environment. See Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, os.LookupEnv)
}

// Parse builds a Config from YAML: defaults, then the YAML (strictly: an
// unknown key is an error), then secrets resolved (${NAME} from env, nil
// meaning os.LookupEnv; file:/abs/path from disk), then validation.
//
// When anything is wrong the error is Problems listing every problem with
// its YAML path, in file order, and the Config is nil. A malformed YAML
// document is a plain error. Non-fatal findings are in Config.Warnings.
func Parse(data []byte, env func(string) (string, bool)) (*Config, error) {
	if env == nil {
		env = os.LookupEnv
	}
	return parse(data, env, readSecretFile)
}

func parse(data []byte, env func(string) (string, bool), readFile func(string) ([]byte, error)) (*Config, error) {
	root, err := parseYAML(data)
	if err != nil {
		return nil, err
	}

	cfg := new(Config)
	cfg.setDefaults()
	col := &collector{}
	d := newDecoder(col)
	if root != nil {
		d.record("", spanOf(0, root))
		d.decode(root, reflect.ValueOf(cfg).Elem(), "")
	}
	(&resolver{collector: col, env: env, readFile: readFile}).walk(reflect.ValueOf(cfg).Elem(), "")
	cfg.derive()

	n := len(col.errs)
	cfg.validate(col)
	col.errs = append(col.errs[:n], dropCovered(col.errs[:n], col.errs[n:])...)
	sortByPosition(col.errs, d.spans)
	sortByPosition(col.warns, d.spans)
	if len(col.errs) > 0 {
		return nil, Problems(col.errs)
	}
	cfg.Warnings = col.warns
	return cfg, nil
}

// parseYAML returns the single document's root node, nil for an empty file.
func parseYAML(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if bytes.Contains(data, []byte("[${")) || bytes.Contains(data, []byte(", ${")) {
			// { } are YAML flow syntax: [${A}] does not parse, ["${A}"] does.
			return nil, fmt.Errorf("parse config: %w (quote ${NAME} inside [ ] lists)", err)
		}
		return nil, fmt.Errorf("parse config: %w", err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, errors.New("parse config: more than one YAML document; the configuration is one")
	}
	return deref(&doc), nil
}

// derive fills defaults that depend on other settings.
func (c *Config) derive() {
	for i := range c.Brands {
		id := &c.Brands[i].Identity
		if id.Name == "" {
			if u, err := url.Parse(id.Issuer); err == nil {
				id.Name = u.Hostname()
			}
		}
	}
}
