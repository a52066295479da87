// Package jsoncompat checks, for the adapters' tests, that the JSON decoder
// the webhook parsers use (inbound.Unmarshal) decodes exactly as
// encoding/json does.
//
// inbound.Unmarshal runs github.com/go-json-experiment/json/v1: the
// encoding/json API and semantics on the json/v2 engine (the code Go 1.27's
// encoding/json runs), about twice as fast with a third of the allocations
// on the bridge's hottest path. Its promise is encoding/json's behaviour; the
// adapters' fuzz tests hold it to that on their own types, so that a brand
// sees the same results and the same error texts whichever of the two is
// linked.
//
// Two differences in the error answered for a value of the wrong JSON type
// are known and allowed: ours names array elements by index
// ("participants.1.id" where encoding/json says "participants.id"), and it
// spells each key of the path as the body did ("Data.text" where
// encoding/json gives the field's name, "data.text", for a key matched
// case-insensitively). Such a key case-folds to one of the parser's own
// field names, so no other input is echoed.
package jsoncompat

import (
	stdjson "encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode"

	json "github.com/go-json-experiment/json/v1"

	"github.com/stepup-bridge/stepup-bridge/adapters/internal/inbound"
)

// Diff decodes body into two fresh values from newValue, one with each
// decoder, and describes how the outcomes differ ("" when they do not):
// the error the adapters would answer (inbound.JSONError's text, which
// reads the error's type, field and offset), and the decoded value
// whenever the parsers go on to use it (no error, or a value of the wrong
// JSON type, after which both decoders carry on and report it at the end).
func Diff(body []byte, newValue func() any) string {
	return diff(body, newValue, true)
}

// DiffValues is Diff for a type whose decoding errors are never answered
// (a fast path that falls back on any error): only whether decoding
// succeeds, and what it decodes then, must match.
func DiffValues(body []byte, newValue func() any) string {
	return diff(body, newValue, false)
}

func diff(body []byte, newValue func() any, answered bool) string {
	std, ours := newValue(), newValue()
	errStd := stdjson.Unmarshal(body, std)
	errOurs := inbound.Unmarshal(body, ours)
	if (errStd == nil) != (errOurs == nil) {
		return fmt.Sprintf("encoding/json: %v; ours: %v", errStd, errOurs)
	}
	if errStd != nil {
		if !answered {
			return ""
		}
		a, b := answer(fromStd(errStd)), answer(withoutIndices(errOurs))
		if fold(a) != fold(b) {
			return fmt.Sprintf("answer %q (encoding/json: %v), ours %q (%v)", a, errStd, b, errOurs)
		}
		var te *json.UnmarshalTypeError
		if !errors.As(errOurs, &te) {
			return "" // a syntax error: the parsers stop there
		}
	}
	if !reflect.DeepEqual(std, ours) {
		return fmt.Sprintf("decoded %#v, ours %#v (error %v)", std, ours, errStd)
	}
	return ""
}

func answer(err error) string { return inbound.JSONError("", err).Error() }

// fold maps each letter to one representative of its case-folding orbit,
// so that two texts fold to the same string exactly when strings.EqualFold
// holds.
func fold(s string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, s)
}

// withoutIndices drops the array indices from a wrong-type error's field
// path (the known difference, see the package comment).
func withoutIndices(err error) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return err
	}
	parts := strings.Split(te.Field, ".")
	kept := parts[:0]
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			kept = append(kept, p)
		}
	}
	c := *te
	c.Field = strings.Join(kept, ".")
	return &c
}

// fromStd gives an encoding/json error the type of ours, with the fields
// inbound.JSONError reads.
func fromStd(err error) error {
	var te *stdjson.UnmarshalTypeError
	var se *stdjson.SyntaxError
	switch {
	case errors.As(err, &te):
		return &json.UnmarshalTypeError{Value: te.Value, Type: te.Type, Offset: te.Offset, Struct: te.Struct, Field: te.Field}
	case errors.As(err, &se):
		// SyntaxError's message is unexported; JSONError reads the offset.
		var ours *json.SyntaxError
		if errors.As(json.Unmarshal([]byte("{"), new(any)), &ours) {
			ours.Offset = se.Offset
			return ours
		}
	}
	return err
}
