package envelope

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/jitpipeline/jit/internal/emailaddr"
	"github.com/jitpipeline/jit/internal/jsonstrict"
	"github.com/jitpipeline/jit/internal/token"
)

// Attribute is the Pub/Sub message attribute that carries the envelope.
const Attribute = "jit-envelope"

// Limits of what is read at all; anything larger is malformed.
const (
	MaxBody  = 64 << 10 // as POST /v1/grants
	MaxToken = 16 << 10
	maxJTI   = 128
)

// Defaults and bounds of Config.
const (
	DefaultMaxLifetime = 5 * time.Minute
	DefaultSkew        = 30 * time.Second
	// LongestLifetime bounds MaxLifetime: an envelope is a one-shot
	// request, not a credential.
	LongestLifetime = time.Hour
)

// Reason says why an envelope was refused. The values are stable codes
// for log queries and alerts.
type Reason string

const (
	ReasonUnsigned        Reason = "unsigned"         // no envelope, or alg none / no signature
	ReasonMalformed       Reason = "malformed"        // not a well-formed envelope or body
	ReasonUnknownSigner   Reason = "unknown_signer"   // the issuer has no keys, or none with this kid
	ReasonUntrustedSigner Reason = "untrusted_signer" // the policy does not trust the issuer to request for others
	ReasonBadSignature    Reason = "bad_signature"    // not an RS256 signature by the kid's key
	ReasonExpired         Reason = "expired"
	ReasonNotYetValid     Reason = "not_yet_valid"
	ReasonTooLongLived    Reason = "too_long_lived"
	ReasonWrongAudience   Reason = "wrong_audience"
	ReasonTampered        Reason = "tampered" // data does not match body_sha256
	ReasonMismatch        Reason = "mismatch" // the body's entitlement is not the signed one
	// ReasonReplayed is never a refusal of Verify, which does not
	// remember envelopes: it is the code under which a subscriber logs a
	// request whose Key the ledger has recorded already
	// (grant.ErrDuplicateRequest), so alerts keep one name for replays.
	ReasonReplayed Reason = "replayed"
)

// ErrRefused matches every *Refused with errors.Is.
var ErrRefused = errors.New("request envelope refused")

// Refused is a permanent refusal of a message: retrying cannot help.
type Refused struct {
	Reason Reason
	// Detail says what exactly was wrong; it never holds the token or the
	// body, and attacker-supplied values in it are quoted and cut short.
	Detail string
	// Issuer is the claimed issuer if the claims could be read; it is
	// verified only for reasons that come after the signature check.
	Issuer string
}

func (r *Refused) Error() string {
	return fmt.Sprintf("request envelope refused (%s): %s", r.Reason, r.Detail)
}

// Is makes errors.Is(err, ErrRefused) true.
func (r *Refused) Is(target error) bool { return target == ErrRefused }

func refuse(reason Reason, issuer, format string, args ...any) *Refused {
	return &Refused{Reason: reason, Issuer: issuer, Detail: fmt.Sprintf(format, args...)}
}

// KeySource gives the key set of an issuer the policy trusts (a
// lower-case email); it is asked only after the trust check, so an
// attacker cannot make it fetch keys for arbitrary accounts. An error
// wrapping ErrUnknownIssuer or token.ErrKeysInvalid, and a key set whose
// Key reports token.ErrNoKeys or token.ErrUnknownKey, are refused as
// unknown_signer; any other error is transient.
type KeySource interface {
	KeySet(ctx context.Context, issuer string) (token.Keys, error)
}

// ErrUnknownIssuer is wrapped by a KeySource that has no keys for an issuer.
var ErrUnknownIssuer = errors.New("no keys for this issuer")

// Config configures a Verifier.
type Config struct {
	Keys KeySource
	// Trusted reports whether the policy trusts this service account
	// (lower-case email) to request access on behalf of users.
	Trusted  func(email string) bool
	Audience string
	// MaxLifetime bounds exp - iat; zero means DefaultMaxLifetime.
	MaxLifetime time.Duration
	// Skew is the clock difference tolerated on exp, iat and nbf; zero
	// means DefaultSkew.
	Skew   time.Duration
	Now    func() time.Time // nil means time.Now
	Logger *slog.Logger     // nil discards
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Keys == nil {
		errs = append(errs, errors.New("Keys is required"))
	}
	if c.Trusted == nil {
		errs = append(errs, errors.New("Trusted is required"))
	}
	if strings.TrimSpace(c.Audience) == "" {
		errs = append(errs, errors.New("Audience is required"))
	}
	if c.MaxLifetime < 0 || c.MaxLifetime > LongestLifetime {
		errs = append(errs, fmt.Errorf("MaxLifetime %s must be between 0 (default %s) and %s", c.MaxLifetime, DefaultMaxLifetime, LongestLifetime))
	}
	if c.Skew < 0 || c.Skew > 5*time.Minute {
		errs = append(errs, fmt.Errorf("Skew %s must be between 0 (default %s) and 5m", c.Skew, DefaultSkew))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid envelope config: %w", err)
	}
	return nil
}

// Verifier checks envelopes. It is safe for concurrent use.
type Verifier struct {
	cfg  Config
	kind token.Kind // Issuers is set per envelope, to the claimed one
	log  *slog.Logger
}

// New validates cfg and fills in its defaults.
func New(cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxLifetime == 0 {
		cfg.MaxLifetime = DefaultMaxLifetime
	}
	if cfg.Skew == 0 {
		cfg.Skew = DefaultSkew
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kind := token.Kind{
		Name:        "request envelope",
		Algorithms:  rs256,
		Skew:        cfg.Skew,
		MaxLifetime: cfg.MaxLifetime,
		MaxBytes:    MaxToken,
		// The header signJwt writes, and a string aud, as signers send.
		OnlyKnownHeaders: true,
		StringAudience:   true,
	}
	return &Verifier{cfg: cfg, kind: kind, log: log}, nil
}

var rs256 = []jose.SignatureAlgorithm{jose.RS256}

// Body is the request in the message data: the body of POST /v1/grants.
// Its fields are those of lifecycle.RequestInput, in the same order, so
// lifecycle.RequestInput(req.Body) converts it.
type Body struct {
	Entitlement       string         `json:"entitlement"`
	RequestedDuration string         `json:"requestedDuration"`
	Justification     string         `json:"justification"`
	Inputs            map[string]any `json:"inputs"`
	Reviewers         []string       `json:"reviewers"`
}

// Request is a verified request from another system.
type Request struct {
	Issuer      string // the signing service account (lower case)
	User        string // the requester, on whose behalf (lower case)
	Entitlement string
	ID          string // the envelope's jti
	// Key identifies this envelope among all: "envelope:" + Issuer + "/" +
	// ID (jtis are unique per issuer, not across systems). It is the
	// grant's RequestKey, which the ledger consumes with the grant.
	Key  string
	Body Body
}

// KeyPrefix starts every Request.Key.
const KeyPrefix = "envelope:"

// Verify checks the envelope of a message from the requests topic and
// returns the request it carries. A *Refused error (errors.Is ErrRefused)
// is permanent; any other error is transient (the key source). Verify
// remembers nothing: every delivery of a valid envelope verifies, with
// the same Key, and replay protection is the ledger's (see the package
// comment).
func (v *Verifier) Verify(ctx context.Context, data []byte, attrs map[string]string) (*Request, error) {
	raw := attrs[Attribute]
	if strings.TrimSpace(raw) == "" {
		return nil, refuse(ReasonUnsigned, "", "the message has no %s attribute", Attribute)
	}
	if len(data) > MaxBody {
		return nil, refuse(ReasonMalformed, "", "the body is longer than %d bytes", MaxBody)
	}
	u, err := token.Peek(raw, v.kind)
	if err != nil {
		return nil, v.refusal(ctx, "", err)
	}
	claimed := u.String("iss")
	if claimed == "" {
		return nil, refuse(ReasonMalformed, "", "iss is required and must be a string")
	}
	// Canonical, not repaired: a look-alike of a trusted signer is not
	// that signer.
	iss, err := emailaddr.Canonical(claimed)
	if err != nil {
		return nil, refuse(ReasonMalformed, "", "iss %s is not a service account email", quote(claimed))
	}
	if !v.cfg.Trusted(iss) {
		return nil, refuse(ReasonUntrustedSigner, iss, "%s is not trusted to request access for others", iss)
	}
	tok, err := v.verifyToken(ctx, iss, claimed, raw)
	if err != nil {
		return nil, err
	}
	req, err := checkClaims(iss, tok)
	if err != nil {
		return nil, err
	}
	if req.Body, err = checkBody(iss, tok, data); err != nil {
		return nil, err
	}
	if req.Body.Entitlement != req.Entitlement {
		return nil, refuse(ReasonMismatch, iss, "the body requests %s but the envelope was signed for %s", quote(req.Body.Entitlement), quote(req.Entitlement))
	}
	req.Key = KeyPrefix + req.Issuer + "/" + req.ID
	return req, nil
}

// verifyToken verifies raw with the issuer's keys under the envelope's
// policy: form, RS256 signature, iss as claimed, aud, times, lifetime.
func (v *Verifier) verifyToken(ctx context.Context, iss, claimed, raw string) (*token.Token, error) {
	keys, err := v.cfg.Keys.KeySet(ctx, iss)
	switch {
	case errors.Is(err, ErrUnknownIssuer):
		return nil, refuse(ReasonUnknownSigner, iss, "%s has no published keys", iss)
	case errors.Is(err, token.ErrKeysInvalid):
		return nil, v.refusal(ctx, iss, err)
	case err != nil:
		return nil, fmt.Errorf("failed to get the keys of %s: %w", iss, err)
	}
	kind := v.kind
	kind.Issuers = []string{claimed}
	tv, err := token.New(kind, keys, v.cfg.Now)
	if err != nil {
		return nil, err // New's policy is valid: cannot happen
	}
	tok, err := tv.Verify(ctx, raw, v.cfg.Audience)
	if err != nil {
		return nil, v.refusal(ctx, iss, err)
	}
	return tok, nil
}

// reasons maps the token package's refusals onto the envelope's. Order
// matters: an unsigned token's error wraps ErrMalformed or ErrAlgorithm
// too, and a malformed one's ErrUnknownKey or ErrExpired.
var reasons = []struct {
	err    error
	reason Reason
}{
	{token.ErrUnsigned, ReasonUnsigned},
	{token.ErrMissing, ReasonUnsigned},
	{token.ErrMalformed, ReasonMalformed},
	{token.ErrClaims, ReasonMalformed},
	{token.ErrAlgorithm, ReasonBadSignature},
	{token.ErrKeysInvalid, ReasonUnknownSigner},
	{token.ErrNoKeys, ReasonUnknownSigner},
	{token.ErrUnknownKey, ReasonUnknownSigner},
	{token.ErrSignature, ReasonBadSignature},
	{token.ErrIssuer, ReasonUntrustedSigner},
	{token.ErrAudience, ReasonWrongAudience},
	{token.ErrExpired, ReasonExpired},
	{token.ErrNotYetValid, ReasonNotYetValid},
	{token.ErrTooLong, ReasonTooLongLived},
}

// refusal turns a token error into a *Refused; an error that is none of
// the token package's refusals (the keys could not be fetched) stays a
// plain, transient error.
func (v *Verifier) refusal(ctx context.Context, iss string, err error) error {
	if errors.Is(err, token.ErrKeysUnusable) && !errors.Is(err, token.ErrKeysInvalid) && !errors.Is(err, token.ErrNoKeys) {
		// The keys could not be fetched, even if the kid is unknown to
		// the cached set: it may be a new key. Let Pub/Sub redeliver.
		return fmt.Errorf("failed to get the keys of %s: %w", iss, err)
	}
	for _, r := range reasons {
		if !errors.Is(err, r.err) {
			continue
		}
		if errors.Is(r.err, token.ErrKeysInvalid) {
			v.log.WarnContext(ctx, "unusable JWKS", slog.String("issuer", iss), slog.Any("error", err))
		}
		return refuse(r.reason, iss, "%v", err)
	}
	return fmt.Errorf("failed to verify the envelope of %s: %w", iss, err)
}

// checkClaims checks the signed claims the token package does not know.
func checkClaims(iss string, tok *token.Token) (*Request, error) {
	malformed := func(format string, args ...any) (*Request, error) {
		return nil, refuse(ReasonMalformed, iss, format, args...)
	}
	if !emailaddr.Equal(tok.Subject, iss) {
		return malformed("sub %s must equal iss %s", quote(tok.Subject), iss)
	}
	raw, err := stringClaim(tok, "user")
	user, errUser := emailaddr.Canonical(raw)
	if err != nil || errUser != nil {
		return malformed("user %s must be the requester's email, in canonical form", quote(raw))
	}
	ent, err := stringClaim(tok, "entitlement")
	if err != nil || strings.TrimSpace(ent) == "" {
		return malformed("entitlement is required")
	}
	jti, err := stringClaim(tok, "jti")
	if err != nil || jti == "" || len(jti) > maxJTI || strings.IndexFunc(jti, notPrintableASCII) >= 0 {
		return malformed("jti must be 1 to %d printable ASCII characters", maxJTI)
	}
	return &Request{Issuer: iss, User: user, Entitlement: ent, ID: jti}, nil
}

// stringClaim reads a claim that must be a JSON string, "" if absent.
func stringClaim(tok *token.Token, name string) (string, error) {
	var s string
	_, err := tok.Claim(name, &s)
	return s, err
}

// checkBody checks data against body_sha256 and decodes it strictly
// (package jsonstrict: no duplicate or case-variant names at any depth,
// exact field names, nothing after the object).
func checkBody(iss string, tok *token.Token, data []byte) (Body, error) {
	claim, err := stringClaim(tok, "body_sha256")
	if err != nil || claim == "" {
		return Body{}, refuse(ReasonMalformed, iss, "body_sha256 is required")
	}
	want, err := b64.DecodeString(claim)
	if err != nil || len(want) != sha256.Size {
		return Body{}, refuse(ReasonMalformed, iss, "body_sha256 must be the unpadded base64url of a SHA-256 digest")
	}
	got := sha256.Sum256(data)
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return Body{}, refuse(ReasonTampered, iss, "the body does not match body_sha256")
	}
	var members map[string]json.RawMessage
	if err := jsonstrict.Unmarshal(data, &members); err != nil || members == nil {
		return Body{}, refuse(ReasonMalformed, iss, "body is not one strict JSON object: %v", err)
	}
	var b Body
	if err := jsonstrict.Unmarshal(data, &b); err != nil {
		return Body{}, refuse(ReasonMalformed, iss, "body: %v", err)
	}
	return b, nil
}

// b64 is strict unpadded base64url, for body_sha256: one digest, one
// spelling.
var b64 = base64.RawURLEncoding.Strict()

// BodyHash is the body_sha256 claim for data.
func BodyHash(data []byte) string {
	sum := sha256.Sum256(data)
	return b64.EncodeToString(sum[:])
}

// Claims are the claims of an envelope, for signers: pass them to
// localoidc.Signer.Sign, or marshal them as the signJwt payload.
type Claims struct {
	Issuer      string `json:"iss"`
	Subject     string `json:"sub"`
	Audience    string `json:"aud"`
	User        string `json:"user"`
	Entitlement string `json:"entitlement"`
	ID          string `json:"jti"`
	IssuedAt    int64  `json:"iat"`
	Expires     int64  `json:"exp"`
	BodySHA256  string `json:"body_sha256"`
}

// NewClaims builds the claims for sending data on behalf of user. data
// must be a body the verifier accepts (strict JSON, known fields).
func NewClaims(serviceAccount, audience, user, id string, data []byte, now time.Time, lifetime time.Duration) (Claims, error) {
	var b Body
	if err := jsonstrict.Unmarshal(data, &b); err != nil {
		return Claims{}, fmt.Errorf("failed to read the request body: %w", err)
	}
	return Claims{
		Issuer:      serviceAccount,
		Subject:     serviceAccount,
		Audience:    audience,
		User:        user,
		Entitlement: b.Entitlement,
		ID:          id,
		IssuedAt:    now.Unix(),
		Expires:     now.Add(lifetime).Unix(),
		BodySHA256:  BodyHash(data),
	}, nil
}

func notPrintableASCII(r rune) bool { return r < 0x21 || r > 0x7e }

// quote quotes an attacker-supplied value for a refusal's detail, cut short
// so a log line stays small.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "…"
	}
	return fmt.Sprintf("%q", s)
}
