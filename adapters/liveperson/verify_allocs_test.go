//go:build !race

package liveperson

import (
	"net/http"
	"testing"
)

// With the adapter's pooled HMACs the signature check allocates nothing, in
// each of the four forms LivePerson may sign in. Not under -race, which
// drops sync.Pool items on purpose.
func TestVerifyAllocations(t *testing.T) {
	secret := []byte("bench-app-secret-0123456789")
	body := []byte(`{"kind":"notification","body":{"changes":[]}}`)
	k := newMACs(secret)
	for _, alg := range []string{"sha1", "sha256"} {
		for _, hex := range []bool{false, true} {
			h := http.Header{HeaderAccountID: {"12345678"}, HeaderClientID: {"app"}, HeaderSignature: {Sign(secret, body, alg, hex)}}
			check := func() {
				if err := verify(h, body, "12345678", "app", k); err != nil {
					t.Fatal(err)
				}
			}
			check()
			if n := testing.AllocsPerRun(100, check); n != 0 {
				t.Errorf("%s (hex %v): %.1f allocations per check, want 0", alg, hex, n)
			}
		}
	}
}
