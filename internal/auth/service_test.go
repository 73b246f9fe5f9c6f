package auth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Service.Check on top of the Google verifier: the verifier checks
// signature, issuer, audience and times; Check refuses what the library
// would not (docs/google-cloud.md §7: idtoken does not check email or email_verified;
// receivers must check email == expected SA and email_verified == true).
func TestServiceCheck(t *testing.T) {
	t.Parallel()
	g := newGoogleFixture(t)
	svc := Service{Verifier: g, Audience: revokeURL, Allowed: []string{tasksSA, "other@proj.iam.gserviceaccount.com"}}
	good := googleClaimsFor(revokeURL)
	for _, tc := range []struct {
		name      string
		authz     string
		wantEmail string
		wantCode  int
	}{
		{"allowed service account", "Bearer " + googleToken(t, good), tasksSA, http.StatusOK},
		{"allowed, email in another case", "Bearer " + googleToken(t, with(good, "email", "JIT-Tasks@Proj.iam.gserviceaccount.com")), tasksSA, http.StatusOK},
		{"email_verified false", "Bearer " + googleToken(t, with(good, "email_verified", false)), "", http.StatusForbidden},
		{"email_verified missing", "Bearer " + googleToken(t, with(good, "email_verified", nil)), "", http.StatusForbidden},
		{"email missing", "Bearer " + googleToken(t, with(good, "email", nil)), "", http.StatusForbidden},
		{"unlisted service account", "Bearer " + googleToken(t, with(good, "email", "attacker@evil.iam.gserviceaccount.com")), "", http.StatusForbidden},
		{"allowed SA, token for another audience", "Bearer " + googleToken(t, with(good, "aud", "https://intake/")), "", http.StatusUnauthorized},
		{"no Authorization header", "", "", http.StatusUnauthorized},
		{"not a bearer token", "Basic dXNlcjpwYXNz", "", http.StatusUnauthorized},
		{"empty bearer", "Bearer ", "", http.StatusUnauthorized},
		{"garbage bearer", "Bearer a.b.c", "", http.StatusUnauthorized},
	} {
		r := httptest.NewRequest(http.MethodPost, "/tasks", nil)
		if tc.authz != "" {
			r.Header.Set("Authorization", tc.authz)
		}
		email, err := svc.Check(r)
		if email != tc.wantEmail || (err == nil) != (tc.wantCode == http.StatusOK) {
			t.Errorf("%s: Check = %q, %v; want %q", tc.name, email, err, tc.wantEmail)
		}
		rec := httptest.NewRecorder()
		svc.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})).ServeHTTP(rec, r)
		if rec.Code != tc.wantCode {
			t.Errorf("%s: Middleware status %d, want %d", tc.name, rec.Code, tc.wantCode)
		}
	}
	if _, err := (Service{Audience: revokeURL, Allowed: []string{tasksSA}}).Check(httptest.NewRequest(http.MethodPost, "/", nil)); err == nil {
		t.Error("Service without a verifier accepted a request")
	}
}

// A service account's look-alike is not the allowed service account.
func TestServiceCheckRefusesVariants(t *testing.T) {
	t.Parallel()
	g := newGoogleFixture(t)
	svc := Service{Verifier: g, Audience: revokeURL, Allowed: []string{tasksSA}}
	for _, email := range []string{tasksSA + "\u00a0", "\u3000" + tasksSA, strings.Replace(tasksSA, "i", "\u0130", 1), strings.Replace(tasksSA, "@", "\uff20", 1)} {
		r := httptest.NewRequest(http.MethodPost, "/tasks", nil)
		r.Header.Set("Authorization", "Bearer "+googleToken(t, with(googleClaimsFor(revokeURL), "email", email)))
		if got, err := svc.Check(r); err == nil {
			t.Errorf("Check accepted %q as %q", email, got)
		}
	}
}
