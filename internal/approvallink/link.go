// Package approvallink mints and verifies the signed links approval emails
// carry: each is bound to one grant and to the approver it was sent to, and
// is valid until the approval deadline.
//
// Tokens are HS256 JWTs keyed with a secret only the approval function
// holds: on Google Cloud a Secret Manager secret whose enabled versions are
// the keys (kid = version number; the newest signs, every enabled one
// verifies, so rotating is adding a version), locally a random 32-byte key
// in a file under the data directory (0600). IAM Credentials signJwt would
// spare us the secret, but it refuses an exp more than 12 hours ahead (see
// docs/google-cloud.md §7) and approval windows may last days.
//
// A link is a bearer credential to the approval page, not an approval: the
// page still authenticates the approver (IAP) and the lifecycle still
// checks the deadline. It is verified by internal/token like every other
// JWT of the project.
package approvallink

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/emailaddr"
)

// MaxBytes bounds a link token; minted tokens are about 400 bytes plus the
// grant ID, so anything near this was not minted here.
const MaxBytes = 4 << 10

// grantClaim is the private claim naming the grant.
const grantClaim = "grant"

// Claims are what a verified link says.
type Claims struct {
	Grant    string    // the grant ID the link is for
	Approver string    // canonical email of the approver it was sent to (sub)
	Expires  time.Time // exp: the approval deadline, to the second
	IssuedAt time.Time // iat
	ID       string    // jti: random, unique per link (for logs and audit)
}

// Keys are the HMAC secrets links are signed and verified with.
type Keys interface {
	// SigningKey is the key new links are signed with, and its id.
	SigningKey(ctx context.Context) (kid string, key []byte, err error)
	// VerifyingKeys are every key a link may be signed with, by id; the
	// signing key is among them.
	VerifyingKeys(ctx context.Context) (map[string][]byte, error)
}

// Minter signs links.
type Minter struct {
	Keys Keys
	// Audience is the aud of every link, e.g. the approval page's base
	// URL, so a link of one deployment is refused by another sharing the
	// key.
	Audience string
	// Issuer is the iss of every link, e.g. the approval function's name.
	Issuer string
	// Clock dates the links; nil means the system clock.
	Clock clock.Clock
}

// Validate reports every problem with the minter at once.
func (m *Minter) Validate() error {
	var errs []error
	if m.Keys == nil {
		errs = append(errs, errors.New("Keys is required"))
	}
	if m.Audience == "" {
		errs = append(errs, errors.New("Audience is required"))
	}
	if m.Issuer == "" {
		errs = append(errs, errors.New("Issuer is required"))
	}
	return errors.Join(errs...)
}

// payload is the claim set in the order it is written.
type payload struct {
	Iss   string `json:"iss"`
	Sub   string `json:"sub"`
	Aud   string `json:"aud"`
	Grant string `json:"grant"`
	Iat   int64  `json:"iat"`
	Exp   int64  `json:"exp"`
	Jti   string `json:"jti"`
}

// Mint returns a link token for grantID, sent to approver, that expires at
// deadline (rounded down to the second, so never after it). approver must
// be a canonical email address in any ASCII case; the token holds it lower
// case, as emailaddr.Canonical returns it.
func (m *Minter) Mint(ctx context.Context, grantID, approver string, deadline time.Time) (string, error) {
	if err := m.Validate(); err != nil {
		return "", fmt.Errorf("invalid approval link minter: %w", err)
	}
	if grantID == "" {
		return "", errors.New("failed to mint an approval link: no grant ID")
	}
	sub, err := emailaddr.Canonical(approver)
	if err != nil {
		return "", fmt.Errorf("failed to mint an approval link: approver: %w", err)
	}
	now := clockOr(m.Clock).Now()
	// Whole seconds, as exp and iat are: a deadline within the current
	// second would give exp == iat, which no verifier accepts.
	if deadline.Unix() <= now.Unix() {
		return "", fmt.Errorf("failed to mint an approval link: deadline %s is not after now (%s)",
			deadline.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	jti := make([]byte, 16)
	_, _ = rand.Read(jti) // never fails (crypto/rand)
	claims, err := json.Marshal(payload{
		Iss: m.Issuer, Sub: sub, Aud: m.Audience, Grant: grantID,
		Iat: now.Unix(), Exp: deadline.Unix(), Jti: base64.RawURLEncoding.EncodeToString(jti),
	})
	if err != nil {
		return "", fmt.Errorf("failed to mint an approval link: %w", err)
	}
	kid, key, err := m.Keys.SigningKey(ctx)
	if err != nil {
		return "", fmt.Errorf("failed to mint an approval link: %w", err)
	}
	if kid == "" {
		return "", errors.New("failed to mint an approval link: the signing key has no id")
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		return "", fmt.Errorf("failed to mint an approval link: key %q: %w", kid, err)
	}
	jws, err := signer.Sign(claims)
	if err != nil {
		return "", fmt.Errorf("failed to mint an approval link: %w", err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		return "", fmt.Errorf("failed to mint an approval link: %w", err)
	}
	if len(tok) > MaxBytes {
		// It would be refused when clicked; better to fail now, loudly.
		return "", fmt.Errorf("failed to mint an approval link: %d bytes, more than %d (grant ID of %d bytes)", len(tok), MaxBytes, len(grantID))
	}
	return tok, nil
}

// URL is the link to the approval page of grantID carrying tok: base (no
// trailing slash needed) + "/approvals/" + the escaped grant ID + "?t=" +
// tok. A compact JWS is base64url and dots, safe in a query as it is.
func URL(base, grantID, tok string) string {
	return strings.TrimSuffix(base, "/") + "/approvals/" + url.PathEscape(grantID) + "?t=" + tok
}

func clockOr(c clock.Clock) clock.Clock {
	if c == nil {
		return clock.Real()
	}
	return c
}
