// Package inbound holds what the platform adapters' parsers share: the JSON
// decoder, errors that name the JSON path at fault (wrapping
// bridge.ErrMalformed) without echoing input, and the bounds every platform
// id must keep.
package inbound

import (
	stdjson "encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	json "github.com/go-json-experiment/json/v1"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// Unmarshal is encoding/json's Unmarshal, semantics included, on the
// json/v2 engine (github.com/go-json-experiment/json/v1, the code Go
// 1.27's encoding/json runs): about twice as fast, with a third of the
// allocations, on every webhook. The engines place the syntax error of
// some truncated bodies a byte or two apart, and the offset is in the
// answer a sender reads, so a syntax error (bad input: off the hot path)
// takes encoding/json's offset. The adapters' FuzzDecodeMatchesStdlib
// hold the rest to encoding/json (see package jsoncompat).
func Unmarshal(data []byte, v any) error {
	err := json.Unmarshal(data, v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// encoding/json checks the syntax of the whole input before it
		// decodes, so the target does not matter.
		var std *stdjson.SyntaxError
		if errors.As(stdjson.Unmarshal(data, new(struct{})), &std) {
			se.Offset = std.Offset
		}
	}
	return err
}

// Malformed builds an error wrapping bridge.ErrMalformed that names the
// JSON path at fault.
func Malformed(path, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", bridge.ErrMalformed, path, fmt.Sprintf(format, args...))
}

// CheckID bounds a platform id: at most max bytes of valid UTF-8 without
// control characters; "" only when not required.
func CheckID(path, v string, required bool, max int) error {
	switch {
	case v == "":
		if required {
			return Malformed(path, "required")
		}
	case len(v) > max:
		return Malformed(path, "%d bytes, at most %d allowed", len(v), max)
	case strings.ContainsFunc(v, unicode.IsControl):
		return Malformed(path, "contains control characters")
	case !utf8.ValidString(v):
		return Malformed(path, "not valid UTF-8")
	}
	return nil
}

// JSONError turns a decoding error into one naming the JSON path (prefix
// is the path of the object decoded, with a trailing dot, or "" for the
// body) and the problem, never echoing input.
func JSONError(prefix string, err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		if te.Field == "" {
			if prefix == "" {
				return Malformed("body", "must be a JSON object")
			}
			return Malformed(strings.TrimSuffix(prefix, "."), "must be an object")
		}
		got, _, _ := strings.Cut(te.Value, " ") // "number 5" → "number": no input echoed
		return Malformed(prefix+te.Field, "must be a JSON %s, not %s", jsonKind(te.Type.Kind().String()), got)
	case errors.As(err, &se):
		return Malformed("body", "invalid JSON at byte %d", se.Offset)
	}
	return Malformed("body", "invalid JSON")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "struct", "map", "ptr":
		return "object"
	case "slice", "array":
		return "array"
	case "bool":
		return "boolean"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "number"
	}
	return "value"
}
