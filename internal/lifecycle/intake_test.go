package lifecycle_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/lifecycle"
)

const bot = "bot@p.iam.gserviceaccount.com"

// A trusted system's request on behalf of a user is the user's request;
// its key is consumed whether the policy accepts it or not, so the same
// envelope never succeeds twice or later.
func TestRequestOnBehalf(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	in := lifecycle.RequestInput{Entitlement: viewer, RequestedDuration: "PT1H", Justification: "page 7"}
	g, err := e.intake.RequestOnBehalf(e.ctx, bot, alice, in, "key-1")
	if err != nil {
		t.Fatal(err)
	}
	if g.Requester != alice.Email || g.RequestKey != "key-1" || g.State != grant.Activating {
		t.Errorf("grant %s for %s key %q", g.State, g.Requester, g.RequestKey)
	}
	if _, err := e.intake.RequestOnBehalf(e.ctx, bot, alice, in, "key-1"); !errors.Is(err, grant.ErrDuplicateRequest) {
		t.Errorf("replay: %v", err)
	}

	// Refused (carol may not join): the key is spent all the same.
	_, err = e.intake.RequestOnBehalf(e.ctx, bot, carol, in, "key-2")
	wantKind(t, err, lifecycle.ErrForbidden, "entitlement")
	if _, err := e.intake.RequestOnBehalf(e.ctx, bot, carol, in, "key-2"); !errors.Is(err, grant.ErrDuplicateRequest) {
		t.Errorf("replay of a refused request: %v", err)
	}

	// An untrusted system is refused.
	_, err = e.intake.RequestOnBehalf(e.ctx, "other@p.iam.gserviceaccount.com", alice, in, "key-3")
	wantKind(t, err, lifecycle.ErrForbidden, "entitlement")
	if _, err := e.intake.RequestOnBehalf(e.ctx, bot, alice, in, ""); err == nil {
		t.Error("a request on behalf without a key was accepted")
	}
}

// What callers see: their entitlements, their own grants, those they may
// approve, and nobody else's.
func TestReading(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	listing, err := e.intake.Entitlements(e.ctx, alice, "")
	if err != nil {
		t.Fatal(err)
	}
	if listing.Incomplete {
		t.Error("a policy document's listing is never incomplete")
	}
	var ids []string
	for _, x := range listing.Entitlements {
		ids = append(ids, x.ID)
	}
	slices.Sort(ids)
	if diff := cmp.Diff([]string{admin, pair, peer, viewer}, ids); diff != "" {
		t.Errorf("entitlements (-want +got):\n%s", diff)
	}
	g := e.request(alice, admin)

	own, err := e.intake.List(e.ctx, alice, false)
	if err != nil || len(own) != 1 || own[0].ID != g.ID {
		t.Errorf("own grants %v, %v", own, err)
	}
	for _, tc := range []struct {
		who  lifecycle.Caller
		want []string
	}{
		{carol, []string{g.ID}},
		{alice, nil}, // never one's own
		{grace, nil},
	} {
		gs, err := e.intake.List(e.ctx, tc.who, true)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, x := range gs {
			got = append(got, x.ID)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("approvable for %s (-want +got):\n%s", tc.who.Email, diff)
		}
	}

	for _, tc := range []struct {
		who  lifecycle.Caller
		id   string
		kind error
	}{
		{alice, g.ID, nil},
		{carol, g.ID, nil}, // an approver
		{grace, g.ID, nil}, // RECONCILE
		{lifecycle.Caller{Email: "mallory@example.com"}, g.ID, lifecycle.ErrNotFound},
		{alice, "not-an-id", lifecycle.ErrNotFound},
		{alice, grant.NewID(), lifecycle.ErrNotFound},
	} {
		_, err := e.intake.Get(e.ctx, tc.who, tc.id)
		if tc.kind == nil && err != nil {
			t.Errorf("Get(%s, %s): %v", tc.who.Email, tc.id, err)
		}
		if tc.kind != nil {
			wantKind(t, err, tc.kind, "id")
		}
	}
}

// Refusals print their code and field; the kind is what callers test.
func TestErrorText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  *lifecycle.Error
		want string
	}{
		{&lifecycle.Error{Kind: lifecycle.ErrInvalid, Field: "reason", Message: "is required"}, "INVALID_ARGUMENT: reason: is required"},
		{&lifecycle.Error{Kind: lifecycle.ErrNotFound, Message: "no grant"}, "NOT_FOUND: no grant"},
		{&lifecycle.Error{Kind: lifecycle.ErrForbidden, Message: "no"}, "PERMISSION_DENIED: no"},
		{&lifecycle.Error{Kind: lifecycle.ErrConflict, Message: "no"}, "FAILED_PRECONDITION: no"},
		{&lifecycle.Error{Kind: lifecycle.ErrUnauthenticated, Message: "no"}, "UNAUTHENTICATED: no"},
		{&lifecycle.Error{Kind: errors.New("other"), Message: "no"}, "UNKNOWN: no"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
		if !errors.Is(tc.err, tc.err.Kind) {
			t.Errorf("%q is not its kind", tc.err)
		}
	}
	if got := (&lifecycle.TooEarlyError{RetryAfter: 90e9}).Error(); !strings.Contains(got, "1m30s") {
		t.Errorf("TooEarlyError = %q", got)
	}
}

// HTTPCallbacks posts JSON, with the token, only to the executions
// endpoint, and never follows a redirect; a finished execution or a
// delivered callback counts as done.
func TestHTTPCallbacks(t *testing.T) {
	t.Parallel()
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body) //nolint:errcheck // checked through got
		got = append(got, r.URL.Path+" "+r.Header.Get("Authorization")+" "+body["state"].(string))
		switch {
		case strings.HasSuffix(r.URL.Path, "/gone"):
			w.WriteHeader(http.StatusNotFound)
		case strings.HasSuffix(r.URL.Path, "/again"):
			w.WriteHeader(http.StatusTooManyRequests)
		case strings.HasSuffix(r.URL.Path, "/broken"):
			w.WriteHeader(http.StatusInternalServerError)
		case strings.HasSuffix(r.URL.Path, "/moved"):
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}
	}))
	t.Cleanup(srv.Close)
	c := lifecycle.HTTPCallbacks{Endpoint: srv.URL, Client: srv.Client(), Token: func(_ context.Context) (string, error) { return "tok", nil }}
	base := srv.URL + "/v1/projects/p/locations/l/workflows/w/executions/x/callbacks/"
	for _, tc := range []struct {
		url     string
		wantErr bool
	}{
		{base + "ok", false},
		{base + "gone", false},
		{base + "again", false},
		{base + "broken", true},
		{base + "moved", true},
		{"https://elsewhere.test/v1/projects/p", true},
	} {
		if err := c.Call(t.Context(), tc.url, map[string]any{"state": "ACTIVE"}); (err != nil) != tc.wantErr {
			t.Errorf("Call(%s) = %v", tc.url, err)
		}
	}
	p := "/v1/projects/p/locations/l/workflows/w/executions/x/callbacks/"
	want := []string{p + "ok Bearer tok ACTIVE", p + "gone Bearer tok ACTIVE", p + "again Bearer tok ACTIVE", p + "broken Bearer tok ACTIVE", p + "moved Bearer tok ACTIVE"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}
