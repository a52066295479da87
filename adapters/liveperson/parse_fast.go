package liveperson

import (
	"bytes"

	json "github.com/go-json-experiment/json/v1"
)

// anyChange is either change shape: msChange and cqmChange have no
// top-level key in common, even under encoding/json's case folding
// (TestChangeShapesDisjoint), so each key of a change lands in the very
// field it lands in when the change is decoded alone as its own shape.
type anyChange struct {
	msChange
	cqmChange
}

// fastEnvelope is envelope with the changes decoded in the same pass.
type fastEnvelope struct {
	Kind string `json:"kind"`
	Type string `json:"type"`
	Body *struct {
		Changes []*anyChange `json:"changes"`
	} `json:"body"`
}

// parseFast is parseSlow in a single json.Unmarshal of the body. ok is
// false whenever it cannot be sure to match parseSlow (any decoding or
// validation error included): the caller then runs parseSlow, which gives
// the result and the exact error. When ok, items and skips are those
// parseSlow returns (FuzzParseFastMatchesSlow).
//
// Why it matches: parseSlow decodes each element of body.changes, kept
// verbatim as a json.RawMessage, into a fresh msChange or cqmChange.
// Here each element is decoded once into a fresh *anyChange, whose
// fields decode exactly as those of the shape the notification type
// picks (the other shape's fields only add errors, which fall back).
// The one difference in encoding/json: when "changes" is decoded twice
// (duplicate keys, in one body or in duplicate bodies), a RawMessage
// element is replaced but a struct element is merged into; such bodies
// are left to parseSlow (changesKeyMayRepeat).
func parseFast(body []byte) (items []item, skips []skipped, ok bool) {
	if changesKeyMayRepeat(body) {
		return nil, nil, false
	}
	var env fastEnvelope
	if err := json.Unmarshal(body, &env); err != nil || env.Body == nil {
		return nil, nil, false
	}
	for _, c := range env.Body.Changes {
		if c == nil {
			return nil, nil, false // null: not an object
		}
		var (
			it   *item
			skip string
			conv string
			err  error
		)
		// The path is for errors only, and an error falls back: "".
		switch env.Type {
		case TypeMessaging:
			it, conv, skip, err = messagingItem(&c.msChange, "")
		case TypeConversation:
			it, conv, skip, err = conversationItem(&c.cqmChange, "")
		default:
			return nil, []skipped{{reason: "notification type not used by the bridge"}}, true
		}
		if err != nil {
			return nil, nil, false
		}
		items, skips = collect(items, skips, it, conv, skip)
	}
	return items, skips, true
}

// changesKeyMayRepeat reports whether body may hold more than one object
// key that encoding/json matches to the "changes" field, at any depth. It
// may say true wrongly (then parseSlow runs), never false wrongly.
//
// encoding/json matches a key to "changes" when its unquoted text equals
// "changes" after simple case folding: each of c, h, a, n, g, e in either
// case, and s, S or U+017F (ſ). Unless such a letter is written as a
// \uXXXX escape (then true), such a key's text in body is a '"', those 7
// characters literally, and a '"': these are counted.
func changesKeyMayRepeat(body []byte) bool {
	for i := 0; ; {
		j := bytes.Index(body[i:], []byte(`\u`))
		if j < 0 {
			break
		}
		i += j + 2
		if i+4 > len(body) {
			return true
		}
		r, ok := hex4(body[i : i+4])
		if !ok || r == 0x17f || (r < 0x80 && bytes.IndexByte([]byte("changes"), byte(r)|0x20) >= 0) {
			return true
		}
	}
	n := 0
	for i := 0; ; {
		j := bytes.IndexByte(body[i:], '"')
		if j < 0 {
			return false
		}
		i += j + 1
		if k := changesAt(body[i:]); k > 0 && i+k < len(body) && body[i+k] == '"' {
			if n++; n > 1 {
				return true
			}
		}
	}
}

// changesAt is the length of the case-folded "changes" at the start of b,
// or 0.
func changesAt(b []byte) int {
	const prefix = "change"
	if len(b) < len(prefix)+1 {
		return 0
	}
	for i := 0; i < len(prefix); i++ {
		if b[i]|0x20 != prefix[i] {
			return 0
		}
	}
	switch {
	case b[6]|0x20 == 's':
		return 7
	case len(b) >= 8 && b[6] == 0xc5 && b[7] == 0xbf: // U+017F ſ
		return 8
	}
	return 0
}

func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
