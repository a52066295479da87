package liveperson

import (
	"crypto/sha1"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/stepup-bridge/stepup-bridge/adapters/internal/hmacpool"
	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// FuzzParse: any verified body parses or fails with ErrMalformed, never
// panics, and gives the same events (ids included) every time: LivePerson's
// retries must dedupe.
func FuzzParse(f *testing.F) {
	addParseSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		items, skips, err := parse(body)
		if err != nil {
			if !errors.Is(err, bridge.ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			if len(items) > 0 || len(skips) > 0 {
				t.Fatal("items with an error")
			}
			return
		}
		for _, it := range items {
			if it.ev.ID == "" || it.ev.Conversation == "" || it.ev.Kind == "" {
				t.Fatalf("incomplete event %+v", it.ev)
			}
			if it.open && it.ev.Consumer == "" {
				t.Fatal("open change without consumer")
			}
		}
		again, _, _ := parse(body)
		if !reflect.DeepEqual(items, again) {
			t.Fatal("parse is not deterministic")
		}
	})
}

// FuzzVerify: the verifier never panics, accepts what Sign produces in all
// four forms, and accepts nothing for a body it was not computed over.
func FuzzVerify(f *testing.F) {
	secret := []byte("rl9hacst6kqilbofup64n11ga3")
	body, _ := os.ReadFile(filepath.Join("testdata", "ms.MessagingEventNotification.ChatStateEvent.consumer-pause.signed.json"))
	f.Add(body, "sha1=e/TfS0wv1HbvEsMqcBMmFLcMslI=")
	f.Add([]byte("{}"), "sha256=00")
	f.Add([]byte("emoji 👍"), "sha1=")
	k := newMACs(secret) // pooled across inputs, as the adapter's are
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		h := http.Header{HeaderAccountID: {"42257269"}, HeaderClientID: {"app"}, HeaderSignature: {sig}}
		err := verify(h, body, "42257269", "app", k)
		if err != nil && !errors.Is(err, bridge.ErrUnauthenticated) {
			t.Fatalf("error not ErrUnauthenticated: %v", err)
		}
		if err == nil {
			// Accepted: it must be a real signature of this body.
			ok := false
			for _, alg := range []string{"sha1", "sha256"} {
				for _, hx := range []bool{false, true} {
					want := Sign(secret, body, alg, hx)
					if got, w := decodeSig(sig), decodeSig(want); got != nil && string(got) == string(w) {
						ok = true
					}
				}
			}
			if !ok {
				t.Fatalf("accepted a signature that is not the body's")
			}
		}
		for _, alg := range []string{"sha1", "sha256"} {
			for _, hx := range []bool{false, true} {
				h.Set(HeaderSignature, Sign(secret, body, alg, hx))
				if err := Verify(h, body, "42257269", "app", secret); err != nil {
					t.Fatalf("own %s signature (hex %v) refused: %v", alg, hx, err)
				}
			}
		}
	})
}

func decodeSig(s string) []byte {
	for _, alg := range []string{"sha1=", "sha256=", "SHA1=", "SHA256="} {
		if len(s) > len(alg) && s[:len(alg)] == alg {
			size := 20
			if len(alg) == 7 {
				size = 32
			}
			b, _ := decodeDigest(hmacpool.NewMAC(sha1.New, nil), s[len(alg):], size)
			return b
		}
	}
	return nil
}
