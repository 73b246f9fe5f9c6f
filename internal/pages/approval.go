package pages

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/jitpipeline/jit/internal/emailaddr"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/lifecycle"
)

// show renders the request for the link's addressee. It only reads.
func (h *Handler) show(w http.ResponseWriter, r *http.Request) {
	id, raw := r.PathValue("id"), r.URL.Query().Get("t")
	caller, ok := h.admit(w, r, id, raw)
	if !ok {
		return
	}
	g, err := h.grants.Get(r.Context(), caller, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.renderGrant(w, http.StatusOK, g, caller, raw, nil, "")
}

// decide takes the form's decision to the approval service and, on
// success, redirects to the page (Post/Redirect/Get), which shows the
// state the decision led to.
func (h *Handler) decide(w http.ResponseWriter, r *http.Request) {
	// A cross-site form cannot set X-Requested-With, as the API requires,
	// so a POST must come from the pages' own origin (sameOriginPost) and
	// carry the CSRF token of the page.
	if !sameOriginPost(r, h.origin) {
		h.log.WarnContext(r.Context(), "approval form refused: foreign or missing Origin", "origin", r.Header.Get("Origin"))
		renderError(w, http.StatusForbidden, "Refused",
			"This decision did not come from the approval page itself, so it was refused. Nothing was changed.",
			"Open the link from your email and use the buttons on the page.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		renderError(w, http.StatusBadRequest, "Unreadable form", "The form could not be read, so nothing was changed.")
		return
	}
	id, raw := r.PathValue("id"), r.PostForm.Get("t")
	caller, ok := h.admit(w, r, id, raw)
	if !ok {
		return
	}
	if !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(h.csrf(caller.Email, id, raw))) {
		h.log.WarnContext(r.Context(), "approval form refused: bad CSRF token", "grant_id", id, "user", caller.Email)
		renderError(w, http.StatusForbidden, "Refused",
			"This form was not the one the approval page gave you, so it was refused. Nothing was changed.",
			"Open the link from your email again and decide there.")
		return
	}
	decision, reason := r.PostForm.Get("decision"), r.PostForm.Get("reason")
	decide := h.grants.Approve
	switch decision {
	case "approve":
	case "deny":
		// The service requires it too; saying so here keeps the form and
		// what was typed.
		if strings.TrimSpace(reason) == "" {
			h.again(w, r, http.StatusBadRequest, caller, id, raw, reason, "To deny a request, say why in the reason: the requester reads it.")
			return
		}
		decide = h.grants.Deny
	default:
		h.again(w, r, http.StatusBadRequest, caller, id, raw, reason, "Choose Approve or Deny.")
		return
	}
	_, err := decide(r.Context(), caller, id, reason)
	var e *lifecycle.Error
	switch {
	case err == nil:
	case errors.As(err, &e) && errors.Is(e.Kind, lifecycle.ErrConflict):
		// Someone decided first, the window closed or the policy changed:
		// show the page as it is now, with who decided what.
		h.again(w, r, http.StatusConflict, caller, id, raw, reason, "Nothing was changed: "+e.Message)
		return
	case errors.As(err, &e) && errors.Is(e.Kind, lifecycle.ErrInvalid):
		h.again(w, r, http.StatusBadRequest, caller, id, raw, reason, e.Message)
		return
	default:
		h.fail(w, r, err)
		return
	}
	h.log.InfoContext(r.Context(), "decision recorded through the approval page", "grant_id", id, "user", caller.Email, "decision", decision)
	http.Redirect(w, r, pagePath(id, raw), http.StatusSeeOther) //nolint:gosec // always /approvals/…, escaped: this origin
}

// again renders the page once more after a refused decision, with why:
// the form (and the reason typed) if a decision is still possible, else
// the state and who decided.
func (h *Handler) again(w http.ResponseWriter, r *http.Request, status int, caller lifecycle.Caller, id, raw, reason, why string) {
	g, err := h.grants.Get(r.Context(), caller, id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.renderGrant(w, status, g, caller, raw, &noticeView{Error: true, Text: why}, reason)
}

func pagePath(id, raw string) string {
	return "/approvals/" + url.PathEscape(id) + "?t=" + url.QueryEscape(raw)
}

// admit lets through only the link's addressee with a valid link for this
// grant, rendering the refusal otherwise.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request, id, raw string) (lifecycle.Caller, bool) {
	if raw == InboxToken {
		return h.inboxCaller(w, r, id)
	}
	if raw == "" {
		renderError(w, http.StatusBadRequest, "Link incomplete",
			"This address lacks the part of the approval link that says who it was sent to.",
			"Open the link from your email, copying the whole address. Nothing was changed.")
		return lifecycle.Caller{}, false
	}
	claims, err := h.links.Verify(r.Context(), raw, id)
	if err == nil && claims.Grant != id {
		err = ErrLinkOtherGrant // a verifier that forgot to compare
	}
	switch {
	case err == nil:
	case errors.Is(err, ErrLinkExpired):
		when := "This link has expired."
		if t := newTimeView(claims.Expires); t.Text != "" {
			when = "This link expired at " + t.Text + "."
		}
		renderError(w, http.StatusGone, "Link expired", when+" Nothing was changed.",
			"If the request still awaits approval, the pipeline's list of requests to approve has it.")
		return lifecycle.Caller{}, false
	case errors.Is(err, ErrLinkOtherGrant):
		renderError(w, http.StatusForbidden, "Link for another request",
			"This link was issued for another request than the one in the address. Nothing was changed.",
			"Open the link from your email, copying the whole address.")
		return lifecycle.Caller{}, false
	case errors.Is(err, ErrLinkInvalid):
		renderError(w, http.StatusBadRequest, "Link not valid",
			"This link is damaged or was not issued by the access pipeline. Nothing was changed.",
			"Open the link from your email again, copying the whole address.")
		return lifecycle.Caller{}, false
	default:
		// The verifier's words may quote what it was given: not the token.
		h.log.ErrorContext(r.Context(), "approval link not verified", "grant_id", id, "error", strings.ReplaceAll(err.Error(), raw, "[token]"))
		renderError(w, http.StatusInternalServerError, "Something went wrong",
			"The link could not be checked just now. Nothing was changed; try again shortly.")
		return lifecycle.Caller{}, false
	}
	caller, err := h.auth.Caller(r)
	if err == nil {
		// The policy, the ledger and the link key people by the canonical
		// address: a look-alike is nobody.
		caller.Email, err = emailaddr.Canonical(caller.Email)
	}
	if err != nil {
		v := errorView{Title: "Sign in", Paragraphs: []string{
			"You are not signed in, so this request cannot be shown. Sign in as " + claims.Approver + " and open the link again.",
		}}
		if h.signInURL != "" {
			v.Link = &linkView{Href: signIn(h.signInURL, id, raw), Text: "Sign in"}
		}
		render(w, http.StatusUnauthorized, "error", v)
		return lifecycle.Caller{}, false
	}
	if !emailaddr.Equal(caller.Email, claims.Approver) {
		v := errorView{Title: "Link for someone else", Paragraphs: []string{
			fmt.Sprintf("This link was sent to %s; you are signed in as %s.", claims.Approver, caller.Email),
			"Sign in as " + claims.Approver + " to see the request. Nothing was changed.",
		}}
		if h.signInURL != "" {
			v.Link = &linkView{Href: signIn(h.signInURL, id, raw), Text: "Sign in as someone else"}
		}
		render(w, http.StatusForbidden, "error", v)
		return lifecycle.Caller{}, false
	}
	return caller, true
}

// InboxToken stands for the link token when an approver comes from their
// list of requests to approve rather than from a mail: no link says whom
// the page is for, so it is for whoever is signed in, and the approval
// service decides, as for the API, whether they may see and decide the
// request. (A link token is a JWT, never this word.)
const InboxToken = "inbox"

// inboxCaller is the signed-in caller, for the inbox's visits.
func (h *Handler) inboxCaller(w http.ResponseWriter, r *http.Request, id string) (lifecycle.Caller, bool) {
	caller, err := h.auth.Caller(r)
	if err == nil {
		caller.Email, err = emailaddr.Canonical(caller.Email)
	}
	if err != nil {
		v := errorView{Title: "Sign in", Paragraphs: []string{"You are not signed in, so this request cannot be shown."}}
		if h.signInURL != "" {
			v.Link = &linkView{Href: signIn(h.signInURL, id, InboxToken), Text: "Sign in"}
		}
		render(w, http.StatusUnauthorized, "error", v)
		return lifecycle.Caller{}, false
	}
	return caller, true
}

// signIn is the sign-in page, to come back to the approval page (as a GET,
// even from a refused POST).
func signIn(base, id, raw string) string {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "next=" + url.QueryEscape(pagePath(id, raw))
}

// csrf is the form's token: it binds the form to the caller, the grant and
// the link (by hash: the key never meets the token itself), so it can be
// checked without server state and is worthless to anyone else.
func (h *Handler) csrf(email, id, raw string) string {
	link := sha256.Sum256([]byte(raw))
	m := hmac.New(sha256.New, h.csrfKey)
	m.Write([]byte(emailaddr.Key(email) + "|" + id + "|" + hex.EncodeToString(link[:])))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// statuses is the HTTP status of each kind of the services' refusals.
var statuses = map[error]int{
	lifecycle.ErrInvalid:         http.StatusBadRequest,
	lifecycle.ErrNotFound:        http.StatusNotFound,
	lifecycle.ErrForbidden:       http.StatusForbidden,
	lifecycle.ErrConflict:        http.StatusConflict,
	lifecycle.ErrUnauthenticated: http.StatusUnauthorized,
}

var titles = map[int]string{
	http.StatusBadRequest:   "Refused",
	http.StatusNotFound:     "No such request",
	http.StatusForbidden:    "Not allowed",
	http.StatusConflict:     "Nothing changed",
	http.StatusUnauthorized: "Sign in",
}

// fail renders a service's refusal with its message, or, for anything
// else, a generic page (the error goes to the log, not to the browser).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *lifecycle.Error
	if errors.As(err, &e) {
		if status, ok := statuses[e.Kind]; ok {
			renderError(w, status, titles[status], e.Message)
			return
		}
	}
	h.log.ErrorContext(r.Context(), "approval page failed", "method", r.Method, "grant_id", r.PathValue("id"), "error", err)
	renderError(w, http.StatusInternalServerError, "Something went wrong",
		"The request could not be shown or decided just now. Try again shortly; the logs say more.")
}

// grantView is the request as the page shows it.
type grantView struct {
	Title             string
	ID                string
	Requester         string
	Entitlement       string
	Duration          string
	Justification     string
	Privileges        []grant.Privilege
	Inputs            []inputView
	State             grant.State
	StateText         string
	Deadline          timeView
	RequiredApprovals int
	Decisions         []decisionView
	Caller            string
	Notice            *noticeView
	// Form is set when the caller may still decide; else Closed says why
	// not.
	Form   *formView
	Closed string
}

type inputView struct{ Name, Value string }

type decisionView struct {
	Approver string
	Approved bool
	Reason   string
	Time     timeView
}

type noticeView struct {
	Error bool
	Text  string
}

type formView struct {
	Action, Token, CSRF, Reason string
	ReasonMax                   int
}
