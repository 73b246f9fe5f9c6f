package pages_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jitpipeline/jit/internal/emailaddr"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/lifecycle"
	"github.com/jitpipeline/jit/internal/pages"
)

const (
	grantID   = "g-abcdefghijklmnopqrst"
	otherID   = "g-bcdefghijklmnopqrstu"
	requester = "alice@example.com"
	carol     = "carol@example.com"
	dave      = "dave@example.com"
	mallory   = "mallory@example.com"
	// The tokens the fake Links knows.
	carolLink   = "link-for-carol"
	daveLink    = "link-for-dave"
	expiredLink = "link-expired"
	otherLink   = "link-other-grant"
	badLink     = "link-tampered"
	userHeader  = "X-Test-User"
)

var (
	now         = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	linkExpired = time.Date(2026, 12, 2, 9, 30, 0, 0, time.UTC)
	// evil is what a requester might write to attack an approver's page.
	evil = `<script>document.title="pwned"</script> "quoted" 'single' ` + longWord
	// longWord must wrap on a phone rather than widen the page.
	longWord = strings.Repeat("w", 2000)
)

// fakeLinks verifies the tokens above, wrapping the pages' sentinels as
// the integrator's adapter does.
type fakeLinks struct{}

func (fakeLinks) Verify(_ context.Context, raw, id string) (pages.LinkClaims, error) {
	switch raw {
	case carolLink, daveLink:
		approver := carol
		if raw == daveLink {
			approver = dave
		}
		if id != grantID {
			return pages.LinkClaims{}, fmt.Errorf("approvallink: %w", pages.ErrLinkOtherGrant)
		}
		return pages.LinkClaims{Grant: grantID, Approver: approver, Expires: now.Add(time.Hour)}, nil
	case expiredLink:
		return pages.LinkClaims{Grant: grantID, Approver: carol, Expires: linkExpired}, fmt.Errorf("approvallink: %w", pages.ErrLinkExpired)
	case otherLink:
		return pages.LinkClaims{}, fmt.Errorf("approvallink: token is for %s: %w", otherID, pages.ErrLinkOtherGrant)
	}
	return pages.LinkClaims{}, fmt.Errorf("approvallink: bad signature: %w", pages.ErrLinkInvalid)
}

// headerAuth takes the caller from a test header; no header, no caller.
var headerAuth = pages.AuthenticatorFunc(func(r *http.Request) (lifecycle.Caller, error) {
	if u := r.Header.Get(userHeader); u != "" {
		return lifecycle.Caller{Email: u}, nil
	}
	return lifecycle.Caller{}, errors.New("no identity")
})

// fakeGrants holds one grant awaiting approval and decides as the
// approval service would: one decision ends it (one approval required),
// a later one is a conflict, a denial needs a reason. It records every
// Approve and Deny call.
type fakeGrants struct {
	mu    sync.Mutex
	g     grant.Grant
	calls []string
}

func newFakeGrants() *fakeGrants {
	return &fakeGrants{g: grant.Grant{
		ID: grantID, Entitlement: "prod-db-admin", Requester: requester, Justification: evil,
		Inputs:            map[string]any{"ticket": "INC-42", "rows": 100},
		RequestedDuration: 90 * time.Minute, State: grant.ApprovalAwaited,
		Privileges: []grant.Privilege{
			{Resource: "projects/prod-db", Role: "roles/cloudsql.admin"},
			{Resource: "projects/prod-logs", Role: "roles/logging.viewer", Condition: `resource.name.startsWith("x")`},
		},
		ApprovalRequired: true, RequiredApprovals: 1, ApprovalDeadline: now.Add(2 * time.Hour),
		Approvers: []string{"user:" + carol, "user:" + dave}, CreateTime: now.Add(-time.Minute),
	}}
}

func (f *fakeGrants) Get(_ context.Context, caller lifecycle.Caller, id string) (*grant.Grant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id != f.g.ID {
		return nil, &lifecycle.Error{Kind: lifecycle.ErrNotFound, Field: "id", Message: fmt.Sprintf("no grant %q", id)}
	}
	g := f.g
	g.Decisions = slices.Clone(f.g.Decisions)
	return &g, nil
}

func (f *fakeGrants) Approve(ctx context.Context, caller lifecycle.Caller, id, reason string) (*grant.Grant, error) {
	return f.decide(ctx, caller, id, reason, true)
}

func (f *fakeGrants) Deny(ctx context.Context, caller lifecycle.Caller, id, reason string) (*grant.Grant, error) {
	return f.decide(ctx, caller, id, reason, false)
}

func (f *fakeGrants) decide(ctx context.Context, caller lifecycle.Caller, id, reason string, approve bool) (*grant.Grant, error) {
	f.mu.Lock()
	verb := "deny"
	if approve {
		verb = "approve"
	}
	f.calls = append(f.calls, verb+" "+caller.Email)
	switch {
	case !approve && reason == "":
		f.mu.Unlock()
		return nil, &lifecycle.Error{Kind: lifecycle.ErrInvalid, Field: "reason", Message: "is required"}
	case !emailaddr.Valid(caller.Email):
		f.mu.Unlock()
		return nil, &lifecycle.Error{Kind: lifecycle.ErrUnauthenticated, Message: "bad caller"}
	case f.g.State != grant.ApprovalAwaited:
		state := f.g.State
		f.mu.Unlock()
		return nil, &lifecycle.Error{Kind: lifecycle.ErrConflict, Message: fmt.Sprintf("%s is %s, not awaiting approval", id, state)}
	}
	f.g.Decisions = append(f.g.Decisions, grant.Decision{Approver: caller.Email, Approved: approve, Reason: reason, Time: now.Add(time.Minute)})
	f.g.State = grant.Denied
	if approve {
		f.g.State = grant.Activating
	}
	f.mu.Unlock()
	return f.Get(ctx, caller, id)
}

// Calls are the Approve and Deny calls so far ("approve carol@…").
func (f *fakeGrants) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }
