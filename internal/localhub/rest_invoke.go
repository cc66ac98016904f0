package localhub

import (
	"errors"
	"log/slog"
	"time"
)

// invocationOutcome logs how an invocation of req on identity ended and
// returns the error answer for a failed one, the same for every API that
// invokes methods (/methods and the digital twin commands): 404103 when
// the device was not online, 504101 when it did not answer, 500001 for an
// answer the hub could not accept and 503001 for a call abandoned by the
// hub's shutdown. A success counts as the identity's activity and returns
// nil.
func (h *Hub) invocationOutcome(log *slog.Logger, identity string, req invokeRequest, err error, attrs []any) *restError {
	switch {
	case errors.Is(err, ErrDeviceNotOnline):
		log.Info("rest: invocation failed: device not online", attrs...)
		return errDeviceNotOnline(req.connectTimeout)
	case errors.Is(err, ErrResponseTimeout):
		log.Info("rest: invocation failed: no response", attrs...)
		return errGatewayTimeout(req.responseTimeout)
	case errors.Is(err, ErrInvalidResponse):
		log.Warn("rest: invocation failed: invalid device response", append(attrs, "err", err)...)
		return errInvalidResponse()
	case err != nil:
		log.Info("rest: invocation abandoned", append(attrs, "err", err)...)
		return errServiceUnavailable()
	}
	h.twins.active(identity, time.Now())
	return nil
}
