package pipeline

import (
	"context"
	"errors"
	"net/http"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// cloudEventHandler serves a CloudEvent function as functions-framework-go
// does — the event decoded from the request (binary or structured mode),
// 200 when the function returns nil, 400 for a request that is no valid
// CloudEvent, 500 for the function's error — but decodes each request on
// its own. The SDK's receive handler (cloudevents.NewHTTPReceiveHandler,
// which funcframework uses) pairs requests with a goroutine each through
// one shared channel: a request whose client gives up before its
// goroutine took a message leaves one message without a taker, and the
// last request of a burst then waits for the next request to arrive. On
// Google Cloud traffic comes and pushes time out and are redelivered;
// here, with a paused clock and nothing else coming, a grant stayed
// ACTIVATING (TestConcurrentGrants).
func cloudEventHandler(fn func(context.Context, cloudevents.Event) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, err := cehttp.NewEventFromHTTPRequest(r)
		if err == nil {
			err = e.Validate()
		}
		if err != nil {
			http.Error(w, "not a valid CloudEvent: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := fn(r.Context(), *e); err != nil {
			var ve event.ValidationError
			if errors.As(err, &ve) {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}
