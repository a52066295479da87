package liveperson

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCustomerIDFromProfile(t *testing.T) {
	tests := []struct {
		name, body, want, err string
	}{
		{"wire form", `{"firstName":"","authenticatedData":{"lp_sdes":[{"type":"personal","personal":{"firstname":"Zoë"}},{"type":"ctmrinfo","info":{"customerId":"user-42","userName":"zoe"}}]}}`, "user-42", ""},
		{"numeric customer id", `{"authenticatedData":{"lp_sdes":[{"type":"ctmrinfo","info":{"customerId":4255551212}}]}}`, "4255551212", ""},
		{"list form, authenticated", `[{"type":"ctmrinfo","info":{"customerId":"user-42"},"auth":{}}]`, "user-42", ""},
		{"list form, not authenticated", `[{"type":"ctmrinfo","info":{"customerId":"user-42"}}]`, "", ""},
		{"no authenticated data", `{"firstName":"Anon","privateData":{"mobileNum":"1"}}`, "", ""},
		{"empty", `{}`, "", ""},
		{"no customer id", `{"authenticatedData":{"lp_sdes":[{"type":"ctmrinfo","info":{"ctype":"vip"}}]}}`, "", ""},
		{"not JSON", `{"authenticatedData":`, "", "not the documented JSON"},
		{"wrong type", `{"authenticatedData":{"lp_sdes":"x"}}`, "", "not the documented JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := customerIDFromProfile([]byte(tc.body))
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
