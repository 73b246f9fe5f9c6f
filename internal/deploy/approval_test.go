package deploy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	secretmanager "google.golang.org/api/secretmanager/v1"

	"github.com/jitpipeline/jit/internal/auth"
	"github.com/jitpipeline/jit/internal/lifecycle"
)

// secrets is Secret Manager as smtpPassword reads it: AccessSecretVersion
// of one version, the payload base64 with its CRC32C.
type secrets struct {
	payload []byte
	crc     int64 // 0: the right one
	err     error
}

func (s secrets) ListSecretVersions(context.Context, string) ([]*secretmanager.SecretVersion, error) {
	return nil, errors.New("not listed")
}

func (s secrets) AccessSecretVersion(_ context.Context, version string) (*secretmanager.AccessSecretVersionResponse, error) {
	if s.err != nil {
		return nil, s.err
	}
	crc := s.crc
	if crc == 0 {
		crc = int64(crc32.Checksum(s.payload, crc32.MakeTable(crc32.Castagnoli)))
	}
	return &secretmanager.AccessSecretVersionResponse{Name: version, Payload: &secretmanager.SecretPayload{
		Data: base64.StdEncoding.EncodeToString(s.payload), DataCrc32c: crc,
	}}, nil
}

func TestSMTPPassword(t *testing.T) {
	t.Parallel()
	const version = "projects/p/secrets/smtp/versions/latest"
	for _, tc := range []struct {
		name    string
		sm      secrets
		want    string
		wantErr string // "": none
	}{
		{"as stored", secrets{payload: []byte("s3cret")}, "s3cret", ""},
		{"the line break echo leaves is dropped", secrets{payload: []byte("s3cret\n")}, "s3cret", ""},
		{"inner spaces are kept", secrets{payload: []byte(" s3 cret ")}, " s3 cret ", ""},
		{"empty", secrets{payload: nil}, "", "is empty"},
		{"only a line break", secrets{payload: []byte("\r\n")}, "", "is empty"},
		{"corrupted", secrets{payload: []byte("s3cret"), crc: 1}, "", "CRC32C"},
		{"unreachable", secrets{err: errors.New("permission denied")}, "", "permission denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := smtpPassword(context.Background(), tc.sm, version)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("smtpPassword() = %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("smtpPassword() error = %v, want one containing %q", err, tc.wantErr)
			case err != nil && (!strings.Contains(err.Error(), version) || len(tc.sm.payload) > 2 && strings.Contains(err.Error(), string(tc.sm.payload))):
				t.Errorf("error %q should name the version and never the password", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("password (-want, +got):\n%s", diff)
			}
		})
	}
}

// keys is approvallink.Keys with one signing key.
type keys []byte

func (k keys) SigningKey(context.Context) (string, []byte, error) {
	if k == nil {
		return "", nil, errors.New("no enabled version")
	}
	return "1", k, nil
}

func (k keys) VerifyingKeys(context.Context) (map[string][]byte, error) {
	return map[string][]byte{"1": k}, nil
}

// The form key is HMAC-SHA256(link key, label): another link key (a
// rotation) is another form key, and the form key is not the link key.
func TestCSRFKeyDerivedFromLinkKey(t *testing.T) {
	t.Parallel()
	linkKey := []byte(strings.Repeat("k", 32))
	mac := hmac.New(sha256.New, linkKey)
	mac.Write([]byte("jit pages csrf v1"))
	want := mac.Sum(nil)

	got, err := csrfKey(context.Background(), keys(linkKey))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("csrfKey (-want, +got):\n%s", diff)
	}
	rotated, err := csrfKey(context.Background(), keys(strings.Repeat("r", 32)))
	if err != nil {
		t.Fatal(err)
	}
	if hmac.Equal(rotated, got) || hmac.Equal(got, linkKey) {
		t.Errorf("the form key must change with the link key and differ from it")
	}
	if _, err := csrfKey(context.Background(), keys(nil)); err == nil || !strings.Contains(err.Error(), "no enabled version") {
		t.Errorf("csrfKey without a key = %v", err)
	}
}

func TestApprovalMux(t *testing.T) {
	t.Parallel()
	named := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) })
	}
	mux := approvalMux(named("api"), named("pages"))
	for _, tc := range []struct{ method, path, want string }{
		{"GET", "/approvals/g-1?t=tok", "pages"},
		{"POST", "/approvals/g-1", "pages"},
		{"POST", "/v1/grants/g-1:approve", "api"},
		{"GET", "/", "api"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			t.Parallel()
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
			if diff := cmp.Diff(tc.want, w.Body.String()); diff != "" {
				t.Errorf("served by (-want, +got):\n%s", diff)
			}
		})
	}
}

// The pages' caller is IAP's verified identity, with the hosted domain
// it vouched for; without an assertion there is none.
func TestPageCallerIsIAPIdentity(t *testing.T) {
	t.Parallel()
	const aud = "/projects/1/locations/europe-west1/services/approval"
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := key.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "alg": "ES256", "use": "sig", "crv": "P-256", "kid": "k1", "x": b64(pub[1:33]), "y": b64(pub[33:]),
	}}})
	people, err := auth.NewIAP(auth.IAPConfig{Audiences: []string{aud}, KeysJSON: jwks})
	if err != nil {
		t.Fatal(err)
	}
	header, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": "k1", "typ": "JWT"})
	now := time.Now().Unix()
	claims, _ := json.Marshal(map[string]any{
		"iss": auth.IAPIssuer, "aud": aud, "sub": "accounts.google.com:1",
		"email": "alice@example.com", "hd": "example.com", "iat": now - 10, "exp": now + 590,
	})
	input := b64(header) + "." + b64(claims)
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])

	req := httptest.NewRequest("GET", "/approvals/g-1", nil)
	req.Header.Set(auth.IAPHeader, input+"."+b64(sig))
	got, err := pageCaller(people).Caller(req)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(lifecycle.Caller{Email: "alice@example.com", HostedDomain: "example.com"}, got); diff != "" {
		t.Errorf("caller (-want, +got):\n%s", diff)
	}
	if _, err := pageCaller(people).Caller(httptest.NewRequest("GET", "/approvals/g-1", nil)); err == nil {
		t.Error("a request without IAP's assertion has a caller")
	}
}
