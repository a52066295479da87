package liveperson

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// jsonKeys is the top-level JSON names of a struct type, embedded ones
// included.
func jsonKeys(t reflect.Type) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			keys = append(keys, jsonKeys(f.Type)...)
			continue
		}
		if name == "" {
			name = f.Name
		}
		keys = append(keys, name)
	}
	return keys
}

// The union anyChange is sound only if no key of one change shape matches
// a field of the other (encoding/json folds case).
func TestChangeShapesDisjoint(t *testing.T) {
	ms, cqm := jsonKeys(reflect.TypeFor[msChange]()), jsonKeys(reflect.TypeFor[cqmChange]())
	require.NotEmpty(t, ms)
	require.NotEmpty(t, cqm)
	for _, a := range ms {
		for _, b := range cqm {
			assert.False(t, strings.EqualFold(a, b), "%q and %q overlap", a, b)
		}
	}
	assert.ElementsMatch(t, append(ms, cqm...), jsonKeys(reflect.TypeFor[anyChange]()))
}

// changesKeyMayRepeat assumes the only runes that fold to a letter of
// "changes" are the ASCII letters and U+017F.
func TestChangesKeyFolds(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < 0x80 && strings.ContainsRune("changes", f|0x20) && f|0x20 >= 'a' {
				if r >= 0x80 && r != 0x17f {
					t.Errorf("%U folds to %q", r, f)
				}
			}
		}
	}
}

func TestChangesKeyMayRepeat(t *testing.T) {
	for body, want := range map[string]bool{
		`{"body":{"changes":[{}]}}`:                             false,
		`{"body":{"changes":[{"m":"changes"}]}}`:                true, // a value counts too: safe side
		`{"body":{"changes":[]},"body":{"CHANGES":[]}}`:         true,
		`{"body":{"changes":[],"changeſ":[]}}`:                  true,
		`{"body":{"changes":[],"\u0063hanges":[]}}`:             true,
		`{"body":{"changes":[],"\u017F":[]}}`:                   true,
		`{"body":{"changes":[{"m":"caf\u00e9 \ud83d\ude00"}]}}`: false,
		`{"body":{"changes":[{"m":"\u"}]}}`:                     true,
		`{"body":{"changes":[{"m":"changesX"}]}}`:               false,
		`{"body":{"changes":[{"m":"changes`:                     false,
	} {
		assert.Equal(t, want, changesKeyMayRepeat([]byte(body)), body)
	}
}

// Bodies on which a one-pass decode would differ from parseSlow: the fast
// path must leave them to parseSlow.
var fallbackBodies = []string{
	// "changes" twice: parseSlow keeps the last array's elements as they
	// are, a struct decode would merge the first ones into them.
	`{"type":"cqm.ExConversationChangeNotification","body":{"changes":[{"type":"UPSERT","result":{"convId":"c1","conversationDetails":{"state":"OPEN","metaDataLastUpdateTs":5}}}],"changes":[{"type":"DELETE"}]}}`,
	`{"type":"cqm.ExConversationChangeNotification","body":{"changes":[{"type":"DELETE","result":{"convId":"c1"}}]},"Body":{"Changes":[{"type":"UPSERT"}]}}`,
	`{"type":"ms.MessagingEventNotification","body":{"changes":[{"sequence":1,"dialogId":"d","originatorMetadata":{"id":"u","role":"CONSUMER"},"event":{"type":"ContentEvent","contentType":"text/plain","message":"hi"}}],"changeſ":[{"sequence":2}]}}`,
	`{"type":"ms.MessagingEventNotification","body":{"changes":[{"dialogId":"d"},{"dialogId":"e"}],"changes":[{"sequence":1}],"\u0063hanges":[{},{}]}}`,
	// Not an object.
	`{"type":"ms.MessagingEventNotification","body":{"changes":[null]}}`,
	`{"type":"ms.MessagingEventNotification","body":{"changes":[5]}}`,
	// A field of the other shape with a type parseSlow never decodes.
	`{"type":"ms.MessagingEventNotification","body":{"changes":[{"result":5,"sequence":1,"dialogId":"d","originatorMetadata":{"id":"u","role":"CONSUMER"},"event":{"type":"ContentEvent","contentType":"text/plain","message":"hi"}}]}}`,
	// Errors.
	`{"type":"ms.MessagingEventNotification","body":{"changes":[{"dialogId":"d","event":{"type":"ContentEvent"}}]}}`,
	`{"type":"ms.MessagingEventNotification"}`,
	`[]`,
}

func TestParseFastFallsBack(t *testing.T) {
	for _, body := range fallbackBodies {
		_, _, ok := parseFast([]byte(body))
		assert.False(t, ok, body)
		assertParseMatchesSlow(t, []byte(body))
	}
}

func assertParseMatchesSlow(t *testing.T, body []byte) {
	t.Helper()
	items, skips, err := parse(body)
	wItems, wSkips, wErr := parseSlow(body)
	if (err == nil) != (wErr == nil) || (err != nil && err.Error() != wErr.Error()) {
		t.Fatalf("parse error %v, parseSlow error %v on %q", err, wErr, body)
	}
	if !reflect.DeepEqual(items, wItems) || !reflect.DeepEqual(skips, wSkips) {
		t.Fatalf("parse %+v %+v, parseSlow %+v %+v on %q", items, skips, wItems, wSkips, body)
	}
}

// addParseSeeds seeds a body fuzz target with the sample notifications,
// FuzzParse's corpus and the bodies the fast path leaves to parseSlow.
func addParseSeeds(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, b := range fuzzCorpus(f, "FuzzParse") {
		f.Add(b)
	}
	for _, b := range fallbackBodies {
		f.Add([]byte(b))
	}
}

// fuzzCorpus is the inputs of a fuzz target's corpus in testdata/fuzz.
func fuzzCorpus(f *testing.F, target string) [][]byte {
	files, _ := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
	var out [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		_, v, _ := strings.Cut(string(b), "\n")
		v = strings.TrimSpace(v)
		v, ok := strings.CutPrefix(v, "[]byte(")
		if !ok || !strings.HasSuffix(v, ")") {
			f.Fatalf("%s: not a []byte corpus entry", name)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(v, ")"))
		if err != nil {
			f.Fatalf("%s: %v", name, err)
		}
		out = append(out, []byte(s))
	}
	return out
}

// FuzzParseFastMatchesSlow: whenever the one-pass parser answers, the
// reference parser succeeds with the same items and skips; and parse
// always gives what parseSlow gives, error text included.
func FuzzParseFastMatchesSlow(f *testing.F) {
	addParseSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		if items, skips, ok := parseFast(body); ok {
			wItems, wSkips, err := parseSlow(body)
			if err != nil {
				t.Fatalf("fast path succeeded, parseSlow: %v", err)
			}
			if !reflect.DeepEqual(items, wItems) || !reflect.DeepEqual(skips, wSkips) {
				t.Fatalf("fast %+v %+v, parseSlow %+v %+v", items, skips, wItems, wSkips)
			}
		}
		assertParseMatchesSlow(t, body)
	})
}

// The hot path: every sample notification decodes in one pass.
func TestParseFastTakesSamples(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*Notification*.json"))
	require.NotEmpty(t, files)
	for _, name := range files {
		body, err := os.ReadFile(name)
		require.NoError(t, err)
		_, _, ok := parseFast(body)
		assert.True(t, ok, name)
		assertParseMatchesSlow(t, body)
	}
}
