package httpapi

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

// idpEvent receives an identity provider's login events
// (POST /idp/{brand}/{provider}): raw body, size-limited, authenticated and
// parsed by the provider's source, recorded before the answer. Okta wants
// 200 or 204 with an empty body, quickly; every provider gets 204.
func (s *server) idpEvent(c *gin.Context) {
	body, ok := s.readBody(c)
	if !ok {
		return
	}
	_, err := s.svc.HandleLoginEvent(c.Request.Context(), c.Param("brand"), c.Param("provider"), s.inboundRequest(c, body))
	if err != nil {
		s.failIdP(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// idpChallenge answers a provider's one-time verification GET (Okta:
// X-Okta-Verification-Challenge, echoed as {"verification": ...} once the
// Authorization header checks out).
func (s *server) idpChallenge(c *gin.Context) {
	v, err := s.svc.LoginEventChallenge(c.Request.Context(), c.Param("brand"), c.Param("provider"), s.inboundRequest(c, nil))
	if err != nil {
		s.failIdP(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"verification": v})
}

// failIdP maps the errors status() does not know, then defers to it.
func (s *server) failIdP(c *gin.Context, err error) {
	switch {
	case errors.Is(err, bridge.ErrUnknownLoginSource):
		c.AbortWithStatusJSON(http.StatusNotFound, errBody(bridge.ErrUnknownLoginSource.Error()))
	case errors.Is(err, bridge.ErrNoChallenge):
		c.Header("Allow", http.MethodPost)
		c.AbortWithStatusJSON(http.StatusMethodNotAllowed, errBody(bridge.ErrNoChallenge.Error()))
	default:
		s.fail(c, err)
	}
}
