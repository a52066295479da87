package oidc

import (
	"errors"

	"github.com/stepup-bridge/stepup-bridge/bridge"
)

var (
	// ErrNotReady means discovery or the signing keys are not loaded yet;
	// the provider keeps retrying in the background.
	ErrNotReady = errors.New("identity provider not ready")
	// ErrUnavailable marks a failure on the identity provider's side
	// (unreachable, 5xx, 429, not ready): the login may work if retried
	// later. It is the bridge's sentinel, so the service can tell.
	ErrUnavailable = bridge.ErrIdPUnavailable
)

// RejectedError is a failed login. It wraps bridge.ErrLoginRejected and the
// cause. Reason is short, fixed text fit for logs and metrics labels (e.g.
// "id token: invalid audience"); neither Reason nor Error ever contains a
// token, code or secret.
type RejectedError struct {
	Reason string
	Err    error
}

func (e *RejectedError) Error() string {
	if e.Err == nil {
		return bridge.ErrLoginRejected.Error() + ": " + e.Reason
	}
	return bridge.ErrLoginRejected.Error() + ": " + e.Reason + ": " + e.Err.Error()
}

// Unwrap returns bridge.ErrLoginRejected and the cause.
func (e *RejectedError) Unwrap() []error {
	if e.Err == nil {
		return []error{bridge.ErrLoginRejected}
	}
	return []error{bridge.ErrLoginRejected, e.Err}
}

func reject(reason string, err error) error {
	return &RejectedError{Reason: reason, Err: err}
}

// Reason returns the short reason of a rejected login, or "" if err is not one.
func Reason(err error) string {
	var r *RejectedError
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}
