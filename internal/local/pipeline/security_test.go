package pipeline_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pubsub "cloud.google.com/go/pubsub/v2"

	"github.com/jitpipeline/jit/internal/auth"
	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/envelope"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/lifecycle"
	"github.com/jitpipeline/jit/internal/local/gcp/localoidc"
	"github.com/jitpipeline/jit/internal/local/pipeline"
)

// The security suite runs against the HTTP surface of the embedded
// pipeline in production-auth mode: people carry IAP assertions signed by
// a test key set (the pipeline is given its JWKS file and audience),
// services carry ID tokens of the local token service, verified by the
// strict Google verifier. Every case is an attack and must be refused —
// with the status it names, no change to the ledger, no event published
// and no change to the IAM policy.

const iapAudience = "/projects/123456789012/global/backendServices/4567890123456789"

type iapKey struct {
	key *ecdsa.PrivateKey
	kid string
}

func newIAPKey(t *testing.T, kid string) iapKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return iapKey{key: k, kid: kid}
}

func (k iapKey) jwks(t *testing.T) string {
	t.Helper()
	raw, err := k.key.PublicKey.Bytes() // 0x04 ‖ X ‖ Y, 32 bytes each
	if err != nil {
		t.Fatal(err)
	}
	x, y := raw[1:33], raw[33:]
	b, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": k.kid,
		"x": base64.RawURLEncoding.EncodeToString(x), "y": base64.RawURLEncoding.EncodeToString(y),
	}}})
	p := filepath.Join(t.TempDir(), "iap-keys.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// sign makes an ES256 JWS over header and claims.
func (k iapKey) sign(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := b64(h) + "." + b64(c)
	digest := sha256.Sum256([]byte(input))
	r, s, _ := ecdsa.Sign(rand.Reader, k.key, digest[:])
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64(sig)
}

type secEnv struct {
	*env
	policy string
	key    iapKey
	now    func() time.Time
	token  func(email string, edit func(h, c map[string]any)) string
}

func startSecure(t *testing.T) *secEnv {
	t.Helper()
	key := newIAPKey(t, "iap-test-1")
	policy := testPolicy(t)
	// A denied principal for the suite: dave is a developer, and developers
	// may join viewer — except dave.
	doc, _ := os.ReadFile(policy)
	doc = []byte(strings.Replace(string(doc),
		`            - {principal: "group:developers@example.com", allow: "JOIN, APPROVE_SELF"}`,
		`            - {principal: "group:developers@example.com", allow: "JOIN, APPROVE_SELF"}
            - {principal: "user:dave@example.com", deny: "JOIN"}`, 1))
	if err := os.WriteFile(policy, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	// Real time: the suite waits for nothing, and its pending request must
	// not expire while it runs.
	e := start(t, pipeline.Config{PolicyFile: policy, Clock: clock.Real(), IAP: &auth.IAPConfig{Audiences: []string{iapAudience}, KeysFile: key.jwks(t)}})
	s := &secEnv{env: e, policy: policy, key: key, now: e.p.Clock.Now}
	s.token = func(email string, edit func(h, c map[string]any)) string {
		// IAP's clock is real time (it is Google's, not the pipeline's).
		now := time.Now()
		h := map[string]any{"alg": "ES256", "kid": key.kid, "typ": "JWT"}
		c := map[string]any{
			"iss": "https://cloud.google.com/iap", "aud": iapAudience, "sub": "accounts.google.com:" + email,
			"email": email, "hd": "example.com", "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		}
		if edit != nil {
			edit(h, c)
		}
		return key.sign(h, c)
	}
	return s
}

// do sends a request with the given headers and body; it returns the
// status and the body.
func (s *secEnv) do(method, path string, headers map[string]string, body string) (int, string) {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequestWithContext(s.t.Context(), method, s.url+path, rd)
	for k, v := range headers {
		// "\x1e" separates several values of one header (an attack case).
		for _, one := range strings.Split(v, "\x1e") {
			req.Header.Add(k, one)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// as is the headers of a well-formed API call by email through IAP.
func (s *secEnv) as(email string) map[string]string {
	return map[string]string{auth.IAPHeader: s.token(email, nil), "X-Requested-With": "test", "Content-Type": "application/json"}
}

func (s *secEnv) request(email, entitlement, duration string) string {
	s.t.Helper()
	code, body := s.do("POST", "/v1/grants", s.as(email), fmt.Sprintf(`{"entitlement":%q,"requestedDuration":%q,"justification":"setup"}`, entitlement, duration))
	if code != 201 {
		s.t.Fatalf("setup request by %s: %d %s", email, code, body)
	}
	var g map[string]any
	json.Unmarshal([]byte(body), &g) //nolint:errcheck // checked by the status
	return g["id"].(string)
}

func (s *secEnv) state(id string) grant.State {
	g, err := s.p.Ledger.Get(s.t.Context(), id)
	if err != nil {
		s.t.Fatal(err)
	}
	return g.State
}

func (s *secEnv) waitFor(id string, want grant.State) {
	s.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if s.state(id) == want {
			return
		}
	}
	s.t.Fatalf("%s stayed %s, want %s", id, s.state(id), want)
}

// snapshot is everything an attack must not change.
func (s *secEnv) snapshot() string {
	s.t.Helper()
	gs, err := s.p.Ledger.List(s.t.Context(), grant.Query{})
	if err != nil {
		s.t.Fatal(err)
	}
	var b strings.Builder
	for _, g := range gs {
		fmt.Fprintf(&b, "%s %s v%d|", g.ID, g.State, g.Version)
	}
	fmt.Fprintf(&b, "events=%d|iam=%v", published(s.env), s.p.Cloud.IAM.Policy("projects/demo-project").GetEtag())
	return b.String()
}

// serviceToken mints a Google-style ID token of the local token service.
func (s *secEnv) serviceToken(sa, audience string) string {
	s.t.Helper()
	tok, err := s.p.Cloud.Signer.IDToken(sa, audience)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

func (s *secEnv) accessToken(sa string) string {
	s.t.Helper()
	tok, err := s.p.Cloud.Signer.AccessToken(sa)
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

func hs256(key []byte, header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := b64(h) + "." + b64(c)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(input))
	return input + "." + b64(m.Sum(nil))
}

func unsigned(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return b64(h) + "." + b64(c) + "."
}

func TestSecuritySuite(t *testing.T) {
	t.Parallel()
	s := startSecure(t)
	const alice, bob, carol, dave, grace = "alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com", "grace@example.com"

	// The state the attacks aim at: bob's request awaiting approval, and
	// alice's active grant.
	pending := s.request(bob, "demo.demo-project.admin", "PT5M")
	active := s.request(alice, "demo.demo-project.viewer", "PT2H")
	s.waitFor(active, grant.Active)
	s.waitFor(pending, grant.ApprovalAwaited)
	time.Sleep(200 * time.Millisecond) // approval.requested handled

	pubDER, _ := x509.MarshalPKIXPublicKey(&s.key.key.PublicKey)
	otherKey := newIAPKey(t, s.key.kid)
	otherSigner, err := localoidc.Open("")
	if err != nil {
		t.Fatal(err)
	}
	grantReq := `{"entitlement":"demo.demo-project.viewer","requestedDuration":"PT1H","justification":"attack"}`
	taskURL := "/functions/revoke-task"
	taskBody := fmt.Sprintf(`{"grantId":%q}`, active)
	withAuth := func(tok string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}
	}
	iapOnly := func(tok string) map[string]string {
		return map[string]string{auth.IAPHeader: tok, "X-Requested-With": "x", "Content-Type": "application/json"}
	}
	edit := func(email string, f func(h, c map[string]any)) map[string]string { return iapOnly(s.token(email, f)) }
	claims := func(email string) map[string]any {
		now := time.Now()
		return map[string]any{"iss": "https://cloud.google.com/iap", "aud": iapAudience, "sub": "x", "email": email, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
	}
	ceHeaders := func(tok string) map[string]string {
		h := map[string]string{"ce-specversion": "1.0", "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
			"ce-source": "//pubsub.googleapis.com/projects/jit-local/topics/jit-events", "ce-id": "attack-1", "Content-Type": "application/json"}
		if tok != "" {
			h["Authorization"] = "Bearer " + tok
		}
		return h
	}
	// A revoke command for alice's active grant: what a forged push would try.
	cmd := fmt.Sprintf(`{"grantId":%q,"entitlement":"demo.demo-project.viewer","requester":"alice@example.com","state":"ACTIVE","reason":"revoke"}`, active)
	push := fmt.Sprintf(`{"subscription":"projects/jit-local/subscriptions/revoke","message":{"data":%q,"messageId":"attack-1","publishTime":"2026-01-01T00:00:00Z","attributes":{"ce-specversion":"1.0","ce-type":"dev.jitpipeline.revoke.requested.v1","ce-source":"//jit.pipeline/grants","ce-id":"attack-1","Content-Type":"application/json"}}}`,
		base64.StdEncoding.EncodeToString([]byte(cmd)))
	callback := "/v1/projects/jit-local/locations/us-central1/workflows/grant-lifecycle/executions/x/callbacks/y"

	cases := []struct {
		name         string
		method, path string
		headers      map[string]string
		body         string
		want         int
		wantAlso     int // a second acceptable status (e.g. 404 that hides existence)
		bodyMentions string
	}{
		// People: the IAP assertion.
		{name: "missing IAP header", method: "GET", path: "/v1/entitlements", want: 401},
		{name: "empty IAP header", method: "GET", path: "/v1/entitlements", headers: iapOnly(""), want: 401},
		{name: "garbage assertion", method: "GET", path: "/v1/entitlements", headers: iapOnly("not.a.jwt"), want: 401},
		{name: "forged signature", method: "POST", path: "/v1/grants", headers: iapOnly(s.token(alice, nil)[:len(s.token(alice, nil))-4] + "AAAA"), body: grantReq, want: 401},
		{name: "wrong key, same kid", method: "POST", path: "/v1/grants", headers: iapOnly(otherKey.sign(map[string]any{"alg": "ES256", "kid": s.key.kid}, claims(alice))), body: grantReq, want: 401},
		{name: "alg none", method: "POST", path: "/v1/grants", headers: iapOnly(unsigned(map[string]any{"alg": "none", "kid": s.key.kid}, claims(alice))), body: grantReq, want: 401},
		{name: "alg HS256 keyed with the public key", method: "POST", path: "/v1/grants", headers: iapOnly(hs256(pubDER, map[string]any{"alg": "HS256", "kid": s.key.kid}, claims(alice))), body: grantReq, want: 401},
		{name: "alg RS256 on the IAP header", method: "GET", path: "/v1/entitlements", headers: iapOnly(s.serviceToken("jit-intake@jit-local.iam.gserviceaccount.com", iapAudience)), want: 401},
		{name: "unknown kid", method: "GET", path: "/v1/entitlements", headers: edit(alice, func(h, _ map[string]any) { h["kid"] = "other" }), want: 401},
		{name: "missing kid", method: "GET", path: "/v1/entitlements", headers: edit(alice, func(h, _ map[string]any) { delete(h, "kid") }), want: 401},
		{name: "wrong issuer", method: "GET", path: "/v1/entitlements", headers: edit(alice, func(_, c map[string]any) { c["iss"] = "https://accounts.google.com" }), want: 401},
		{name: "wrong audience", method: "GET", path: "/v1/entitlements", headers: edit(alice, func(_, c map[string]any) { c["aud"] = "/projects/1/global/backendServices/2" }), want: 401},
		{name: "audience of the other form", method: "GET", path: "/v1/entitlements", headers: edit(alice, func(_, c map[string]any) {
			c["aud"] = "/projects/123456789012/locations/us-central1/services/jit"
		}), want: 401},
		{name: "expired", method: "GET", path: "/v1/entitlements", headers: edit(alice, func(_, c map[string]any) {
			c["iat"], c["exp"] = time.Now().Add(-20*time.Minute).Unix(), time.Now().Add(-10*time.Minute).Unix()
		}), want: 401},
		{name: "issued in the future", method: "GET", path: "/v1/entitlements", headers: edit(alice, func(_, c map[string]any) {
			c["iat"], c["exp"] = time.Now().Add(10*time.Minute).Unix(), time.Now().Add(20*time.Minute).Unix()
		}), want: 401},
		{name: "not yet valid", method: "GET", path: "/v1/entitlements", headers: edit(alice, func(_, c map[string]any) { c["nbf"] = time.Now().Add(10 * time.Minute).Unix() }), want: 401},
		{name: "no email claim", method: "GET", path: "/v1/entitlements", headers: edit(alice, func(_, c map[string]any) { delete(c, "email") }), want: 401},
		{name: "payload swapped under a valid signature", method: "POST", path: "/v1/grants", headers: iapOnly(func() string {
			good := strings.Split(s.token(alice, nil), ".")
			evil := strings.Split(s.token(grace, nil), ".")
			return good[0] + "." + evil[1] + "." + good[2]
		}()), body: grantReq, want: 401},
		{name: "two assertion headers", method: "GET", path: "/v1/entitlements", headers: map[string]string{auth.IAPHeader: s.token(alice, nil) + "\x1e" + s.token(grace, nil)}, want: 401},
		{name: "oversized assertion", method: "GET", path: "/v1/entitlements", headers: iapOnly(strings.Repeat("a", 9000)), want: 401},
		{name: "debug principal header in production mode", method: "POST", path: "/v1/grants", headers: map[string]string{"X-Debug-Principal": "user:alice@example.com", "X-Requested-With": "x", "Content-Type": "application/json"}, body: grantReq, want: 401},
		{name: "unsigned x-goog-authenticated-user-email", method: "POST", path: "/v1/grants", headers: map[string]string{"X-Goog-Authenticated-User-Email": "accounts.google.com:alice@example.com", "X-Requested-With": "x", "Content-Type": "application/json"}, body: grantReq, want: 401},
		{name: "debug header claiming an admin beside dave's assertion", method: "POST", path: "/v1/grants/" + active + ":revoke", headers: func() map[string]string {
			h := s.as(dave)
			h["X-Debug-Principal"] = "user:grace@example.com"
			return h
		}(), want: 403, wantAlso: 404},
		{name: "local IAM page absent in production mode", method: "GET", path: "/local/iam/projects/demo-project", headers: s.as(grace), want: 404},

		// Requests that change anything: the XSRF header, the body.
		{name: "no X-Requested-With on a request", method: "POST", path: "/v1/grants", headers: map[string]string{auth.IAPHeader: s.token(alice, nil), "Content-Type": "application/json"}, body: grantReq, want: 403, bodyMentions: "X-Requested-With"},
		{name: "no X-Requested-With on an approval", method: "POST", path: "/v1/grants/" + pending + ":approve", headers: map[string]string{auth.IAPHeader: s.token(carol, nil)}, want: 403},
		{name: "no X-Requested-With on a withdrawal", method: "POST", path: "/v1/grants/" + active + ":withdraw", headers: map[string]string{auth.IAPHeader: s.token(alice, nil)}, want: 403},
		{name: "no X-Requested-With on a revocation", method: "POST", path: "/v1/grants/" + active + ":revoke", headers: map[string]string{auth.IAPHeader: s.token(grace, nil)}, want: 403},
		{name: "oversized body", method: "POST", path: "/v1/grants", headers: s.as(alice), body: `{"entitlement":"demo.demo-project.viewer","justification":"` + strings.Repeat("x", 70<<10) + `"}`, want: 413},
		{name: "malformed JSON", method: "POST", path: "/v1/grants", headers: s.as(alice), body: `{"entitlement":`, want: 400},
		{name: "unknown field", method: "POST", path: "/v1/grants", headers: s.as(alice), body: `{"entitlement":"demo.demo-project.viewer","requestedDuration":"PT1H","justification":"x","role":"roles/owner"}`, want: 400, bodyMentions: "role"},
		{name: "two JSON values", method: "POST", path: "/v1/grants", headers: s.as(alice), body: grantReq + grantReq, want: 400},
		{name: "wrong content type", method: "POST", path: "/v1/grants", headers: func() map[string]string { h := s.as(alice); h["Content-Type"] = "text/plain"; return h }(), body: grantReq, want: 415},

		// Requests the policy does not allow.
		// erin is a manager: she may approve admin requests, not make them.
		{name: "entitlement outside the caller's ACL", method: "POST", path: "/v1/grants", headers: s.as("erin@example.com"), body: `{"entitlement":"demo.demo-project.admin","requestedDuration":"PT5M","justification":"x"}`, want: 403},
		// Denying JOIN denies VIEW too (docs/jit-access.md §3.3): dave does not see it.
		{name: "denied principal", method: "POST", path: "/v1/grants", headers: s.as(dave), body: grantReq, want: 404, wantAlso: 403},
		{name: "outsider", method: "POST", path: "/v1/grants", headers: s.as("mallory@evil.example"), body: grantReq, want: 403},
		{name: "unknown entitlement", method: "POST", path: "/v1/grants", headers: s.as(alice), body: `{"entitlement":"demo.demo-project.owner","requestedDuration":"PT1H","justification":"x"}`, want: 404},
		{name: "duration beyond the policy", method: "POST", path: "/v1/grants", headers: s.as(alice), body: `{"entitlement":"demo.demo-project.viewer","requestedDuration":"P1D","justification":"x"}`, want: 400},
		{name: "missing justification", method: "POST", path: "/v1/grants", headers: s.as(alice), body: `{"entitlement":"demo.demo-project.viewer","requestedDuration":"PT1H"}`, want: 400},
		{name: "justification too long", method: "POST", path: "/v1/grants", headers: s.as(alice), body: `{"entitlement":"demo.demo-project.viewer","requestedDuration":"PT1H","justification":"` + strings.Repeat("x", lifecycle.MaxJustification+1) + `"}`, want: 400},
		{name: "undeclared input", method: "POST", path: "/v1/grants", headers: s.as(alice), body: `{"entitlement":"demo.demo-project.viewer","requestedDuration":"PT1H","justification":"x","inputs":{"approver":"alice@example.com"}}`, want: 400},

		// Decisions.
		{name: "self-approval", method: "POST", path: "/v1/grants/" + pending + ":approve", headers: s.as(bob), want: 403},
		{name: "approval by a non-approver", method: "POST", path: "/v1/grants/" + pending + ":approve", headers: s.as(dave), want: 404, wantAlso: 403},
		{name: "approval by a peer without APPROVE_OTHERS", method: "POST", path: "/v1/grants/" + pending + ":approve", headers: s.as(alice), want: 404, wantAlso: 403},
		{name: "approval by an outsider", method: "POST", path: "/v1/grants/" + pending + ":approve", headers: s.as("mallory@evil.example"), want: 404, wantAlso: 403},
		{name: "denial by a non-approver", method: "POST", path: "/v1/grants/" + pending + ":deny", headers: s.as(dave), body: `{"reason":"no"}`, want: 404, wantAlso: 403},
		{name: "denial without a reason", method: "POST", path: "/v1/grants/" + pending + ":deny", headers: s.as(carol), body: `{}`, want: 400},
		{name: "approval of an active grant", method: "POST", path: "/v1/grants/" + active + ":approve", headers: s.as(carol), want: 404, wantAlso: 403},
		{name: "approval of an unknown grant", method: "POST", path: "/v1/grants/g-aaaaaaaaaaaaaaaaaaaa:approve", headers: s.as(carol), want: 404},
		{name: "approval of a malformed id", method: "POST", path: "/v1/grants/..%2F..%2Fetc:approve", headers: s.as(carol), want: 404},
		{name: "unknown action", method: "POST", path: "/v1/grants/" + pending + ":escalate", headers: s.as(carol), want: 404},

		// Someone else's grant.
		{name: "withdraw of someone else's grant", method: "POST", path: "/v1/grants/" + active + ":withdraw", headers: s.as(bob), want: 404, wantAlso: 403},
		{name: "withdraw by the approver", method: "POST", path: "/v1/grants/" + pending + ":withdraw", headers: s.as(carol), want: 403},
		{name: "reading someone else's grant", method: "GET", path: "/v1/grants/" + active, headers: s.as(dave), want: 404},
		{name: "revoke without RECONCILE (requester)", method: "POST", path: "/v1/grants/" + active + ":revoke", headers: s.as(alice), want: 403},
		{name: "revoke without RECONCILE (approver)", method: "POST", path: "/v1/grants/" + active + ":revoke", headers: s.as(carol), want: 404, wantAlso: 403},

		// Services: the revocation task.
		{name: "task without a token", method: "POST", path: taskURL, headers: map[string]string{"Content-Type": "application/json"}, body: taskBody, want: 401},
		{name: "task with a forged token", method: "POST", path: taskURL, headers: withAuth(s.serviceToken(pipeline.TasksSA, s.url+taskURL) + "x"), body: taskBody, want: 401},
		{name: "task token signed by another key", method: "POST", path: taskURL, headers: withAuth(func() string {
			tok, _ := otherSigner.IDToken(pipeline.TasksSA, s.url+taskURL)
			return tok
		}()), body: taskBody, want: 401},
		{name: "task token for another audience", method: "POST", path: taskURL, headers: withAuth(s.serviceToken(pipeline.TasksSA, s.url+"/elsewhere")), body: taskBody, want: 401},
		{name: "task token from an unlisted service account", method: "POST", path: taskURL, headers: withAuth(s.serviceToken(pipeline.IntakeSA, s.url+taskURL)), body: taskBody, want: 403},
		{name: "task token with an unverified email", method: "POST", path: taskURL, headers: withAuth(func() string {
			now := time.Now()
			tok, _ := s.p.Cloud.Signer.Sign(localoidc.Claims{Issuer: localoidc.Issuer, Audience: s.url + taskURL, Subject: "1", Email: pipeline.TasksSA, EmailVerified: false, IssuedAt: now.Unix(), Expires: now.Add(time.Hour).Unix()})
			return tok
		}()), body: taskBody, want: 403},
		{name: "task token with the wrong issuer", method: "POST", path: taskURL, headers: withAuth(func() string {
			now := time.Now()
			tok, _ := s.p.Cloud.Signer.Sign(localoidc.Claims{Issuer: "https://evil.example", Audience: s.url + taskURL, Subject: "1", Email: pipeline.TasksSA, EmailVerified: true, IssuedAt: now.Unix(), Expires: now.Add(time.Hour).Unix()})
			return tok
		}()), body: taskBody, want: 401},
		{name: "task token expired", method: "POST", path: taskURL, headers: withAuth(func() string {
			now := time.Now()
			tok, _ := s.p.Cloud.Signer.Sign(localoidc.Claims{Issuer: localoidc.Issuer, Audience: s.url + taskURL, Subject: "1", Email: pipeline.TasksSA, EmailVerified: true, IssuedAt: now.Add(-2 * time.Hour).Unix(), Expires: now.Add(-time.Hour).Unix()})
			return tok
		}()), body: taskBody, want: 401},
		{name: "a person's IAP assertion as a task token", method: "POST", path: taskURL, headers: withAuth(s.token(grace, nil)), body: taskBody, want: 401},

		// Services: Pub/Sub push (Eventarc) and workflow callbacks.
		{name: "push without a token", method: "POST", path: "/functions/revoke", headers: ceHeaders(""), body: push, want: 401},
		{name: "push token from an unlisted service account", method: "POST", path: "/functions/revoke", headers: ceHeaders(s.serviceToken(pipeline.IntakeSA, s.url+"/functions/revoke")), body: push, want: 403},
		{name: "push token for another endpoint", method: "POST", path: "/functions/revoke", headers: ceHeaders(s.serviceToken(pipeline.EventsSA, s.url+"/functions/grant")), body: push, want: 401},
		{name: "push token signed by another key", method: "POST", path: "/functions/revoke", headers: ceHeaders(func() string {
			tok, _ := otherSigner.IDToken(pipeline.EventsSA, s.url+"/functions/revoke")
			return tok
		}()), body: push, want: 401},
		{name: "workflow trigger without a token", method: "POST", path: "/eventarc/grant-lifecycle", headers: ceHeaders(""), body: push, want: 401},
		// Workflow callbacks want an OAuth 2.0 access token with
		// workflows.callbacks.send, as on Google: an ID token, even a
		// sender's, is not one (401); an access token of another identity
		// lacks the permission (403).
		{name: "workflow callback without a token", method: "POST", path: callback, headers: map[string]string{"Content-Type": "application/json"}, body: `{"state":"ACTIVATING"}`, want: 401},
		{name: "workflow callback with a sender's ID token", method: "POST", path: callback, headers: withAuth(s.serviceToken(pipeline.GrantSA, s.url)), body: `{"state":"ACTIVATING"}`, want: 401},
		{name: "workflow callback with an unknown access token", method: "POST", path: callback, headers: withAuth("ya29.local.forged"), body: `{"state":"ACTIVATING"}`, want: 401},
		{name: "workflow callback from an unlisted service account", method: "POST", path: callback, headers: withAuth(s.accessToken(pipeline.TasksSA)), body: `{"state":"ACTIVATING"}`, want: 403},
		{name: "workflow callback from the revoke function", method: "POST", path: callback, headers: withAuth(s.accessToken(pipeline.RevokeSA)), body: `{"state":"ACTIVATING"}`, want: 403},
		{name: "workflow callback from the events service account", method: "POST", path: callback, headers: withAuth(s.accessToken(pipeline.EventsSA)), body: `{"state":"ACTIVATING"}`, want: 403},
		{name: "workflow callback with a person's assertion", method: "POST", path: callback, headers: withAuth(s.token(carol, nil)), body: `{"state":"ACTIVATING"}`, want: 401},
		{name: "workflow callback with a sender's access token, unknown execution", method: "POST", path: callback, headers: withAuth(s.accessToken(pipeline.GrantSA)), body: `{"state":"ACTIVATING"}`, want: 404},
	}
	if len(cases) < 60 {
		t.Fatalf("only %d attack cases", len(cases))
	}
	for _, tc := range cases {
		before := s.snapshot()
		code, body := s.do(tc.method, tc.path, tc.headers, tc.body)
		if code != tc.want && (tc.wantAlso == 0 || code != tc.wantAlso) {
			t.Errorf("%s: status %d (%s), want %d", tc.name, code, strings.TrimSpace(body), tc.want)
		}
		if tc.bodyMentions != "" && !strings.Contains(body, tc.bodyMentions) {
			t.Errorf("%s: answer %q does not name %q", tc.name, body, tc.bodyMentions)
		}
		if strings.Contains(body, s.token(alice, nil)[:40]) {
			t.Errorf("%s: the answer echoes a token", tc.name)
		}
		time.Sleep(20 * time.Millisecond) // anything a bad request set in motion would show now
		if after := s.snapshot(); after != before {
			t.Errorf("%s: state changed:\n%s\n→\n%s", tc.name, before, after)
		}
	}
	// The attacks left the real grants as they were, and the real flow works.
	if st := s.state(active); st != grant.Active {
		t.Errorf("alice's grant is %s", st)
	}
	code, body := s.do("POST", "/v1/grants/"+pending+":approve", s.as(carol), "")
	if code != 200 {
		t.Fatalf("carol's approval: %d %s", code, body)
	}
	s.waitFor(pending, grant.Active)
}

// The approver lost the right: after the policy file changes, carol's
// approval is refused on the policy in force, not the one at request time.
func TestApprovalAfterTheApproverLostTheRight(t *testing.T) {
	t.Parallel()
	s := startSecure(t)
	pending := s.request("bob@example.com", "demo.demo-project.admin", "PT5M")
	s.waitFor(pending, grant.ApprovalAwaited)
	doc, _ := os.ReadFile(s.policyFile())
	edited := strings.Replace(string(doc), `{principal: "user:carol@example.com", allow: "APPROVE_OTHERS"}`, `{principal: "user:carol@example.com", allow: "VIEW"}`, 1)
	if err := os.WriteFile(s.policyFile(), []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	// The policy source would see the edit after its TTL; force the check.
	if err := s.p.Policy.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := s.snapshot()
	if code, body := s.do("POST", "/v1/grants/"+pending+":approve", s.as("carol@example.com"), ""); code != 403 && code != 404 {
		t.Fatalf("approval by carol after losing APPROVE_OTHERS: %d %s", code, body)
	}
	if after := s.snapshot(); after != before {
		t.Errorf("refused approval changed state:\n%s\n→\n%s", before, after)
	}
	if st := s.state(pending); st != grant.ApprovalAwaited {
		t.Errorf("request is %s", st)
	}
}

func (s *secEnv) policyFile() string { return s.policy }

// Other systems publish signed requests on behalf of users to the requests
// topic. A trusted system's valid envelope becomes a grant for the user;
// unsigned, untrusted, tampered, replayed and policy-refused messages are
// acknowledged and change nothing.
func TestRequestsFromOtherSystems(t *testing.T) {
	t.Parallel()
	e := start(t, pipeline.Config{Clock: clock.Real()})
	ps, err := e.p.Cloud.PubSub.NewClient(t.Context(), pipeline.Project)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	pub := ps.Publisher(pipeline.RequestsTopic)
	defer pub.Stop()
	body := []byte(`{"entitlement":"demo.demo-project.viewer","requestedDuration":"PT1H","justification":"INC-7 paged"}`)
	sign := func(sa, user, id string, data []byte) string {
		c, err := envelope.NewClaims(sa, pipeline.RequestsAudience, user, id, data, time.Now(), 2*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := e.p.Cloud.Signer.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	send := func(data []byte, attrs map[string]string) {
		if _, err := pub.Publish(t.Context(), &pubsub.Message{Data: data, Attributes: attrs}).Get(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	grants := func() int {
		gs, err := e.p.Ledger.List(t.Context(), grant.Query{})
		if err != nil {
			t.Fatal(err)
		}
		return len(gs)
	}
	valid := sign(pipeline.IncidentBotSA, "alice@example.com", "inc-7-1", body)
	tampered := []byte(strings.Replace(string(body), "PT1H", "PT2H", 1))
	for _, m := range map[string]struct {
		data  []byte
		attrs map[string]string
	}{
		"unsigned":                    {body, nil},
		"garbage envelope":            {body, map[string]string{envelope.Attribute: "x.y.z"}},
		"untrusted signer":            {body, map[string]string{envelope.Attribute: sign("other-bot@jit-local.iam.gserviceaccount.com", "alice@example.com", "o-1", body)}},
		"unknown signer":              {body, map[string]string{envelope.Attribute: sign("bot@elsewhere.iam.gserviceaccount.com", "alice@example.com", "u-1", body)}},
		"tampered body":               {tampered, map[string]string{envelope.Attribute: valid}},
		"user the policy refuses":     {body, map[string]string{envelope.Attribute: sign(pipeline.IncidentBotSA, "mallory@evil.example", "m-1", body)}},
		"entitlement the bot may not": {[]byte(`{"entitlement":"demo.demo-project.nope","requestedDuration":"PT1H","justification":"x"}`), map[string]string{envelope.Attribute: sign(pipeline.IncidentBotSA, "alice@example.com", "n-1", []byte(`{"entitlement":"demo.demo-project.nope","requestedDuration":"PT1H","justification":"x"}`))}},
	} {
		send(m.data, m.attrs)
	}
	send(body, map[string]string{envelope.Attribute: valid})
	send(body, map[string]string{envelope.Attribute: valid}) // replayed

	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && e.p.Cloud.Bridge.Stats("projects/jit-local/subscriptions/intake-requests").Acked < 9 {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if n := grants(); n != 1 {
		t.Fatalf("%d grants, want exactly the one valid request", n)
	}
	gs, _ := e.p.Ledger.List(t.Context(), grant.Query{})
	g := gs[0]
	if g.Requester != "alice@example.com" || g.Entitlement != "demo.demo-project.viewer" || !strings.Contains(g.Timeline[0].Message, "requested by "+pipeline.IncidentBotSA) {
		t.Errorf("grant %+v", g)
	}
	e.waitState("alice@example.com", g.ID, grant.Active)
}
