// Package pages is the approval page an approver reaches from the link in
// their email (BASE/approvals/{grantID}?t=TOKEN): server-rendered HTML
// that works without JavaScript, showing the request and its live state
// and, while it awaits approval, a form to approve or deny it.
//
// The link's token says whom the link was sent to; the caller is who the
// entry point verified (IAP, or locally the user picker's cookie). Both
// must agree before anything of the request is shown, and again before a
// decision is passed to the approval service, which re-checks the policy
// in force. GET never decides anything; a POST must come from the pages'
// own origin and carry a CSRF token bound to the caller, the grant and the
// link.
package pages

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/lifecycle"
)

// MinCSRFKey is the shortest CSRF key accepted (bytes): HMAC-SHA256's
// block of security.
const MinCSRFKey = 32

// maxForm bounds a POST body: a reason is at most lifecycle.MaxReason
// characters, the token a few hundred bytes.
const maxForm = 16 << 10

// Grants is the slice of the lifecycle services the pages use: reading a
// grant (lifecycle.IntakeService.Get) and deciding on it
// (lifecycle.ApprovalService.Approve and Deny). Refusals are
// *lifecycle.Error values.
type Grants interface {
	Get(ctx context.Context, caller lifecycle.Caller, id string) (*grant.Grant, error)
	Approve(ctx context.Context, caller lifecycle.Caller, id, reason string) (*grant.Grant, error)
	Deny(ctx context.Context, caller lifecycle.Caller, id, reason string) (*grant.Grant, error)
}

// LinkClaims is what a verified approval link says: the grant it is for,
// the approver it was sent to and when it stops working.
type LinkClaims struct {
	Grant, Approver string
	Expires         time.Time
}

// Links verifies the token of an approval link for the grant of the URL.
// Its errors wrap ErrLinkInvalid, ErrLinkExpired or ErrLinkOtherGrant; on
// ErrLinkExpired the claims carry Expires (zero if the verifier cannot
// tell), so the page can say when the link stopped working.
type Links interface {
	Verify(ctx context.Context, raw, grantID string) (LinkClaims, error)
}

// The refusals of Links.Verify the pages tell apart.
var (
	// ErrLinkInvalid is a token that is malformed, tampered with or not
	// signed by the pipeline.
	ErrLinkInvalid = errors.New("approval link invalid")
	// ErrLinkExpired is a genuine token past its expiry.
	ErrLinkExpired = errors.New("approval link expired")
	// ErrLinkOtherGrant is a genuine token for another grant than the
	// URL's.
	ErrLinkOtherGrant = errors.New("approval link for another grant")
)

// Authenticator names the caller of a request as the entry point verified
// them (IAP's assertion on Google Cloud, the user picker's cookie or the
// debug header locally), or refuses the request. The address need not be
// canonical: the pages refuse one that is not.
type Authenticator interface {
	Caller(r *http.Request) (lifecycle.Caller, error)
}

// AuthenticatorFunc adapts a function to Authenticator, e.g. one wrapping
// an api.Authenticator.
type AuthenticatorFunc func(r *http.Request) (lifecycle.Caller, error)

// Caller calls f.
func (f AuthenticatorFunc) Caller(r *http.Request) (lifecycle.Caller, error) { return f(r) }

// Clock tells the time (clock.Clock satisfies it): whether the approval
// window is still open.
type Clock interface {
	Now() time.Time
}

// Config is what the pages need. Every field is required but Logger and
// SignInURL.
type Config struct {
	Grants Grants
	Links  Links
	Auth   Authenticator
	// CSRFKey keys the forms' CSRF tokens: at least MinCSRFKey random
	// bytes, the same in every instance serving the pages.
	CSRFKey []byte
	// Origin is scheme://host[:port] the pages are served on, as browsers
	// send it in the Origin header of a form's POST.
	Origin string
	Clock  Clock
	// Logger is optional (nothing is logged without it). Tokens and CSRF
	// values are never logged.
	Logger *slog.Logger
	// SignInURL, optional, is a page where a caller without an identity
	// can sign in, given ?next= the page to come back to: locally the
	// user picker (LoginPath). On Google Cloud IAP signs people in before
	// they reach the pages, so it stays empty.
	SignInURL string
}

// Validate reports every missing or unusable field.
func (c Config) Validate() error {
	var errs []error
	for _, n := range []struct {
		name string
		ok   bool
	}{{"Grants", c.Grants != nil}, {"Links", c.Links != nil}, {"Auth", c.Auth != nil}, {"Clock", c.Clock != nil}} {
		if !n.ok {
			errs = append(errs, fmt.Errorf("%s is required", n.name))
		}
	}
	if len(c.CSRFKey) < MinCSRFKey {
		errs = append(errs, fmt.Errorf("CSRFKey must be at least %d bytes, got %d", MinCSRFKey, len(c.CSRFKey)))
	}
	if _, err := origin(c.Origin); err != nil {
		errs = append(errs, fmt.Errorf("Origin %q is unusable: %w", c.Origin, err))
	}
	if c.SignInURL != "" && !localPath(c.SignInURL) {
		errs = append(errs, fmt.Errorf("SignInURL %q must be a path on the pages' origin", c.SignInURL))
	}
	return errors.Join(errs...)
}

// origin checks s is a bare http(s) origin and returns it as browsers
// serialise it: lower case, without the default port.
func origin(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", errors.New("scheme must be http or https")
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("must be scheme://host[:port] and nothing else")
	}
	host := strings.ToLower(u.Host)
	if p := u.Port(); (u.Scheme == "http" && p == "80") || (u.Scheme == "https" && p == "443") {
		host = strings.TrimSuffix(host, ":"+p)
	}
	return u.Scheme + "://" + host, nil
}

// Handler serves GET and POST /approvals/{id}.
type Handler struct {
	grants    Grants
	links     Links
	auth      Authenticator
	csrfKey   []byte
	origin    string
	clock     Clock
	log       *slog.Logger
	signInURL string
	mux       *http.ServeMux
}

// New builds the approval pages' handler; a missing or unusable field of
// cfg is an error naming it.
func New(cfg Config) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pages: %w", err)
	}
	o, _ := origin(cfg.Origin) // checked by Validate
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &Handler{
		grants: cfg.Grants, links: cfg.Links, auth: cfg.Auth, csrfKey: append([]byte(nil), cfg.CSRFKey...),
		origin: o, clock: cfg.Clock, log: log, signInURL: cfg.SignInURL, mux: http.NewServeMux(),
	}
	h.mux.HandleFunc("GET /approvals/{id}", h.show)
	h.mux.HandleFunc("POST /approvals/{id}", h.decide)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		renderError(w, http.StatusNotFound, "Not found", "There is no page here.")
	})
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setHeaders(w)
	h.mux.ServeHTTP(w, r)
}
