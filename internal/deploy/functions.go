package deploy

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/jitpipeline/jit/internal/auth"
	"github.com/jitpipeline/jit/internal/envelope"
	"github.com/jitpipeline/jit/internal/lifecycle"
	"github.com/jitpipeline/jit/internal/pages"
	"github.com/jitpipeline/jit/internal/wiring"
)

// lazy builds a function's handler once, on first use; a failure is
// reported to the caller (503) and retried on the next invocation. The
// build gets a background context, never the invocation's: the clients it
// makes outlive the request that happened to come first.
type lazy[T any] struct {
	mu    sync.Mutex
	value T
	ok    bool
	build func(context.Context) (T, error)
}

func (l *lazy[T]) get() (T, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ok {
		return l.value, nil
	}
	v, err := l.build(context.Background())
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
		h, err := l.get()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}
}

func lazyEvent(build func(context.Context) (wiring.CloudEventFunc, error)) wiring.CloudEventFunc {
	l := &lazy[wiring.CloudEventFunc]{build: build}
	return func(ctx context.Context, e cloudevents.Event) error {
		fn, err := l.get()
		if err != nil {
			return err // redelivered once the function is configured
		}
		return fn(ctx, e)
	}
}

// The builders of each function from the environment; the entry points
// below make them lazy.

func buildIntake(ctx context.Context, cfg Config) (*wiring.Intake, error) {
	d, err := deps(ctx, cfg, "intake", false)
	if err != nil {
		return nil, err
	}
	// The inbox of the people's pages links to the approval pages.
	d.PagesURL = cfg.PagesURL
	return wiring.NewIntake(d)
}

// buildApproval builds the approval function for one of its entry points
// (function): each needs the mail, link and pages settings, because
// wiring.NewApproval builds the decisions, the notifications and the pages
// together.
func buildApproval(ctx context.Context, cfg Config, function string) (*wiring.Approval, error) {
	if err := cfg.ValidateFor(function); err != nil {
		return nil, err
	}
	d, err := deps(ctx, cfg, function, false)
	if err != nil {
		return nil, err
	}
	if err := approvalDeps(ctx, cfg, function, &d); err != nil {
		return nil, fmt.Errorf("the %s function: %w", function, err)
	}
	return wiring.NewApproval(d)
}

func buildGrant(ctx context.Context, cfg Config) (*wiring.Grant, error) {
	d, err := deps(ctx, cfg, "grant", true)
	if err != nil {
		return nil, err
	}
	return wiring.NewGrant(d)
}

func buildRevoke(ctx context.Context, cfg Config, function string) (*wiring.Revoke, error) {
	d, err := deps(ctx, cfg, function, true)
	if err != nil {
		return nil, err
	}
	return wiring.NewRevoke(d)
}

// Intake is the intake function's HTTP entry point.
func Intake() http.HandlerFunc {
	return lazyHTTP(func(ctx context.Context) (http.Handler, error) {
		cfg := FromEnv()
		people, err := iap(cfg)
		if err != nil {
			return nil, fmt.Errorf("the intake function is not configured: %w", err)
		}
		f, err := buildIntake(ctx, cfg)
		if err != nil {
			return nil, err
		}
		portal, err := f.Portal(pageCaller(people), "")
		if err != nil {
			return nil, fmt.Errorf("the intake function: %w", err)
		}
		// The API under /v1/, the people's pages everywhere else.
		mux := http.NewServeMux()
		mux.Handle("/v1/", f.HTTP(people))
		mux.Handle("/", portal)
		return mux, nil
	})
}

// IntakeRequests is the intake function's entry point for the requests
// topic: signed requests from other systems. Google publishes each
// service account's keys; the policy says whom to trust; replays are the
// ledger's to refuse (envelope.Request.Key).
func IntakeRequests() wiring.CloudEventFunc {
	return lazyEvent(func(ctx context.Context) (wiring.CloudEventFunc, error) {
		cfg := FromEnv()
		f, err := buildIntake(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return f.Requests(&envelope.GoogleKeys{}, cfg.RequestsAud)
	})
}

// Approval is the approval function's HTTP entry point: the decisions API
// (approve, deny) and, under /approvals/, the approval pages the mailed
// links open. Both authenticate people with the same IAP verifier.
func Approval() http.HandlerFunc {
	return lazyHTTP(func(ctx context.Context) (http.Handler, error) {
		cfg := FromEnv()
		people, err := iap(cfg)
		if err != nil {
			return nil, fmt.Errorf("the approval function is not configured: %w", err)
		}
		f, err := buildApproval(ctx, cfg, "approval")
		if err != nil {
			return nil, err
		}
		approvalPages, err := f.Pages(pageCaller(people))
		if err != nil {
			return nil, fmt.Errorf("the approval function: %w", err)
		}
		return approvalMux(f.HTTP(people), approvalPages), nil
	})
}

// approvalMux serves the pages the links open under /approvals/ and the
// decisions API everywhere else, where it was before the pages existed.
func approvalMux(decisions, approvalPages http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/approvals/", approvalPages)
	mux.Handle("/", decisions)
	return mux
}

// pageCaller is who IAP says made the request, with the hosted domain it
// vouched for (the policy's notion of internal).
func pageCaller(people *auth.IAP) pages.Authenticator {
	return pages.AuthenticatorFunc(func(r *http.Request) (lifecycle.Caller, error) {
		id, err := people.Identify(r)
		if err != nil {
			return lifecycle.Caller{}, fmt.Errorf("no verified IAP identity: %w", err)
		}
		return lifecycle.Caller{Email: id.Email, HostedDomain: id.HostedDomain}, nil
	})
}

// ApprovalEvents is the approval function's CloudEvent entry point for
// approval.requested.
func ApprovalEvents() wiring.CloudEventFunc {
	return lazyEvent(func(ctx context.Context) (wiring.CloudEventFunc, error) {
		f, err := buildApproval(ctx, FromEnv(), "approvalEvents")
		if err != nil {
			return nil, err
		}
		return f.Events(), nil
	})
}

// ApprovalNotify is the approval function's CloudEvent entry point for the
// events topic: every transition, mailed to whom it concerns.
func ApprovalNotify() wiring.CloudEventFunc {
	return lazyEvent(func(ctx context.Context) (wiring.CloudEventFunc, error) {
		f, err := buildApproval(ctx, FromEnv(), "approvalNotify")
		if err != nil {
			return nil, err
		}
		return f.Notify(), nil
	})
}

// Grant is the grant function's CloudEvent entry point.
func Grant() wiring.CloudEventFunc {
	return lazyEvent(func(ctx context.Context) (wiring.CloudEventFunc, error) {
		f, err := buildGrant(ctx, FromEnv())
		if err != nil {
			return nil, err
		}
		return f.Events(), nil
	})
}

// Revoke is the revoke function's CloudEvent entry point.
func Revoke() wiring.CloudEventFunc {
	return lazyEvent(func(ctx context.Context) (wiring.CloudEventFunc, error) {
		f, err := buildRevoke(ctx, FromEnv(), "revoke")
		if err != nil {
			return nil, err
		}
		return f.Events(), nil
	})
}

// RevokeTask is the revoke function's Cloud Tasks entry point.
func RevokeTask() http.HandlerFunc {
	return lazyHTTP(func(ctx context.Context) (http.Handler, error) {
		cfg := FromEnv()
		f, err := buildRevoke(ctx, cfg, "revoke")
		if err != nil {
			return nil, err
		}
		check, err := tasksAuth(cfg)
		if err != nil {
			return nil, err
		}
		return f.Tasks(check), nil
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
		f, err := buildRevoke(ctx, cfg, "sweep")
		if err != nil {
			return nil, err
		}
		return f.Sweep(check), nil
	})
}
