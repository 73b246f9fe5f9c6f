package deploy

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	approvalfn "github.com/jitpipeline/jit/functions/approval"
	grantfn "github.com/jitpipeline/jit/functions/grant"
	intakefn "github.com/jitpipeline/jit/functions/intake"
	revokefn "github.com/jitpipeline/jit/functions/revoke"
)

// lazy builds a function's handler once, on first use; a failure is
// reported to the caller (503) and retried on the next invocation.
type lazy[T any] struct {
	mu    sync.Mutex
	value T
	ok    bool
	build func(context.Context) (T, error)
}

func (l *lazy[T]) get(ctx context.Context) (T, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ok {
		return l.value, nil
	}
	v, err := l.build(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	l.value, l.ok = v, true
	return v, nil
}

func lazyHTTP(build func(context.Context) (http.Handler, error)) http.HandlerFunc {
	l := &lazy[http.Handler]{build: build}
	return func(w http.ResponseWriter, r *http.Request) {
		h, err := l.get(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}
}

func lazyEvent(build func(context.Context) (func(context.Context, cloudevents.Event) error, error)) func(context.Context, cloudevents.Event) error {
	l := &lazy[func(context.Context, cloudevents.Event) error]{build: build}
	return func(ctx context.Context, e cloudevents.Event) error {
		fn, err := l.get(ctx)
		if err != nil {
			return err // redelivered once the function is configured
		}
		return fn(ctx, e)
	}
}

// Intake is the intake function's HTTP entry point.
func Intake() http.HandlerFunc {
	return lazyHTTP(func(ctx context.Context) (http.Handler, error) {
		cfg := FromEnv()
		people, err := iap(cfg)
		if err != nil {
			return nil, fmt.Errorf("the intake function is not configured: %w", err)
		}
		svc, log, err := build(ctx, cfg, "intake", false)
		if err != nil {
			return nil, err
		}
		return intakefn.HTTP(svc, people, log), nil
	})
}

// IntakeRequests is the intake function's entry point for the requests
// topic: signed requests from other systems.
func IntakeRequests() func(context.Context, cloudevents.Event) error {
	return lazyEvent(func(ctx context.Context) (func(context.Context, cloudevents.Event) error, error) {
		cfg := FromEnv()
		b, err := buildAll(ctx, cfg, "intake", false)
		if err != nil {
			return nil, err
		}
		v, err := requestsVerifier(context.WithoutCancel(ctx), cfg, b)
		if err != nil {
			return nil, err
		}
		return intakefn.Requests(b.svc, v, b.log), nil
	})
}

// Approval is the approval function's HTTP entry point (approve, deny).
func Approval() http.HandlerFunc {
	return lazyHTTP(func(ctx context.Context) (http.Handler, error) {
		cfg := FromEnv()
		people, err := iap(cfg)
		if err != nil {
			return nil, fmt.Errorf("the approval function is not configured: %w", err)
		}
		svc, log, err := build(ctx, cfg, "approval", false)
		if err != nil {
			return nil, err
		}
		return approvalfn.HTTP(svc, people, log), nil
	})
}

// ApprovalEvents is the approval function's CloudEvent entry point.
func ApprovalEvents() func(context.Context, cloudevents.Event) error {
	return lazyEvent(func(ctx context.Context) (func(context.Context, cloudevents.Event) error, error) {
		svc, log, err := build(ctx, FromEnv(), "approval", false)
		if err != nil {
			return nil, err
		}
		return approvalfn.Events(svc, log), nil
	})
}

// Grant is the grant function's CloudEvent entry point.
func Grant() func(context.Context, cloudevents.Event) error {
	return lazyEvent(func(ctx context.Context) (func(context.Context, cloudevents.Event) error, error) {
		svc, log, err := build(ctx, FromEnv(), "grant", true)
		if err != nil {
			return nil, err
		}
		return grantfn.Events(svc, log), nil
	})
}

// Revoke is the revoke function's CloudEvent entry point.
func Revoke() func(context.Context, cloudevents.Event) error {
	return lazyEvent(func(ctx context.Context) (func(context.Context, cloudevents.Event) error, error) {
		svc, log, err := build(ctx, FromEnv(), "revoke", true)
		if err != nil {
			return nil, err
		}
		return revokefn.Events(svc, log), nil
	})
}

// RevokeTask is the revoke function's Cloud Tasks entry point.
func RevokeTask() http.HandlerFunc {
	return lazyHTTP(func(ctx context.Context) (http.Handler, error) {
		cfg := FromEnv()
		svc, log, err := build(ctx, cfg, "revoke", true)
		if err != nil {
			return nil, err
		}
		check, err := tasksAuth(cfg)
		if err != nil {
			return nil, err
		}
		return revokefn.Tasks(svc, check, log), nil
	})
}

// Sweep is the sweep entry point, for Cloud Scheduler: deployed with the
// revoke function's identity (it finishes revocations and purges expired
// bindings), invoked with an OIDC token of the scheduler's own service
// account.
func Sweep() http.HandlerFunc {
	return lazyHTTP(func(ctx context.Context) (http.Handler, error) {
		cfg := FromEnv()
		check, err := sweepAuth(cfg)
		if err != nil {
			return nil, fmt.Errorf("the sweep function is not configured: %w", err)
		}
		svc, log, err := build(ctx, cfg, "sweep", true)
		if err != nil {
			return nil, err
		}
		return revokefn.Sweep(svc, check, log), nil
	})
}
