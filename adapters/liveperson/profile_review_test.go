package liveperson

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProfileAuthNullIsNotAuthenticated: in the list form an SDE counts as
// authenticated only when it carries auth information; "auth": null is
// JSON for none. Otherwise a customerId an unauthenticated page set (any
// page can push ctmrinfo) would be read as the authenticated subject of an
// identity swap, or make attach_identity skip its call.
func TestProfileAuthNullIsNotAuthenticated(t *testing.T) {
	for name, body := range map[string]string{
		"auth null":            `[{"type":"ctmrinfo","info":{"customerId":"victim-42"},"auth":null}]`,
		"auth null, spaced":    `[{"type":"ctmrinfo","info":{"customerId":"victim-42"},"auth": null }]`,
		"null before the real": `[{"type":"ctmrinfo","info":{"customerId":"victim-42"},"auth":null},{"type":"ctmrinfo","info":{"customerId":"user-7"},"auth":{"iss":"https://idp.example"}}]`,
	} {
		t.Run(name, func(t *testing.T) {
			got, err := customerIDFromProfile([]byte(body))
			require.NoError(t, err)
			assert.NotEqual(t, "victim-42", got)
		})
	}
}
