package telemetry

import (
	"strings"
	"testing"
)

// TestScrubQuerySecrets: free text (an error quoting a URL or a form body)
// loses the value of every query parameter that the handler treats as
// sensitive as an attribute name, not only code, state and token.
func TestScrubQuerySecrets(t *testing.T) {
	for _, in := range []string{
		"https://idp.example/authorize?client_id=c&nonce=SECRETVALUE&code_challenge=x",
		"grant_type=authorization_code&code=abc&code_verifier=SECRETVALUE&redirect_uri=x",
		"POST https://idp.example/token?client_secret=SECRETVALUE",
		"https://idp.example/token?grant_type=refresh_token&refresh_token=SECRETVALUE",
		"https://api.example/x?password=SECRETVALUE",
		"https://api.example/x?api_key=SECRETVALUE",
	} {
		if got := Scrub(in); strings.Contains(got, "SECRETVALUE") {
			t.Errorf("Scrub(%q) = %q: the secret stays", in, got)
		}
	}
}
