package bridge

import "errors"

// Sentinel errors. The HTTP layer maps them to statuses in one place.
var (
	ErrNotFound         = errors.New("not found")
	ErrUnknownBrand     = errors.New("unknown brand")
	ErrUnknownPlatform  = errors.New("unknown platform for brand")
	ErrDuplicate        = errors.New("duplicate event")
	ErrTicketInvalid    = errors.New("login link invalid, used or expired")
	ErrLoginInvalid     = errors.New("login transaction invalid, used or expired")
	ErrLoginRejected    = errors.New("login rejected")
	ErrClosed           = errors.New("conversation closed")
	ErrAlreadySteppedUp = errors.New("conversation already stepped up")
	ErrBoundElsewhere   = errors.New("conversation already bound to another identity")
	ErrTooManyLinks     = errors.New("too many login links for this conversation")
	ErrChannelRefused   = errors.New("step-up not allowed on this channel")
	ErrUnauthenticated  = errors.New("unauthenticated request")
	ErrMalformed        = errors.New("malformed request")
	ErrUnavailable      = errors.New("store unavailable")
	ErrEntryExpired     = errors.New("outbox entry expired before delivery (its login link is no longer valid)")
	// ErrIdPUnavailable marks a login that failed on the identity
	// provider's side (unreachable, 5xx, keys not loaded): not the
	// consumer's fault, and not an attack — metrics and pages say so.
	ErrIdPUnavailable = errors.New("identity provider unavailable")
)

// permanentError marks a delivery failure that retrying cannot fix.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying (e.g. a 4xx from a platform).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
