package approvallink

import (
	"context"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/emailaddr"
	"github.com/jitpipeline/jit/internal/token"
)

// Refusals of Verify, for the page to explain; test with errors.Is. None
// contains the token. Any other error is ours (the keys could not be had,
// wrapping token.ErrKeysUnusable): the link may be good, try again later.
var (
	// ErrInvalid: not a link this deployment minted, or altered since
	// (malformed, bad signature, unknown or disabled key, another alg,
	// issuer or audience, missing claims). Nothing in it can be trusted.
	ErrInvalid = errors.New("invalid approval link")
	// ErrExpired: a genuine link whose deadline has passed; the error is
	// an *ExpiredError telling when.
	ErrExpired = errors.New("approval link expired")
	// ErrOtherGrant: a genuine, current link, but for another grant than
	// the page it was presented to (an edited URL).
	ErrOtherGrant = errors.New("approval link is for another grant")
)

// ExpiredError is the ErrExpired of a link that expired at At. At was
// signed, so the page may show it ("this link expired at …").
type ExpiredError struct{ At time.Time }

func (e *ExpiredError) Error() string {
	return fmt.Sprintf("%s at %s", ErrExpired, e.At.UTC().Format(time.RFC3339))
}

// Unwrap makes errors.Is(err, ErrExpired) hold.
func (e *ExpiredError) Unwrap() error { return ErrExpired }

// Skew is the clock difference allowed on exp and iat: minter and verifier
// are both on Google's (or one machine's) clock.
const Skew = 10 * time.Second

// Refresher may be implemented by Keys that cache: when a link names a key
// the cached ones lack (a version added since), the verifier asks for the
// keys afresh once before refusing it. Implementations bound how often.
type Refresher interface {
	RefreshKeys(ctx context.Context) (map[string][]byte, error)
}

// Verifier checks links.
type Verifier struct {
	audience string
	v        *token.Verifier
}

// NewVerifier returns a verifier of the links a Minter with the same
// issuer and audience mints from keys; c nil means the system clock.
func NewVerifier(keys Keys, issuer, audience string, c clock.Clock) (*Verifier, error) {
	var errs []error
	if keys == nil {
		errs = append(errs, errors.New("Keys is required"))
	}
	if issuer == "" {
		errs = append(errs, errors.New("issuer is required"))
	}
	if audience == "" {
		errs = append(errs, errors.New("audience is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("invalid approval link verifier: %w", err)
	}
	kind := token.Kind{
		Name:             "approval link",
		Algorithms:       []jose.SignatureAlgorithm{jose.HS256},
		Issuers:          []string{issuer},
		Skew:             Skew,
		MaxBytes:         MaxBytes,
		OnlyKnownHeaders: true,
		StringAudience:   true,
	}
	v, err := token.New(kind, token.KeysFunc(func(ctx context.Context, kid string) (any, error) {
		return keyByID(ctx, keys, kid)
	}), clockOr(c).Now)
	if err != nil {
		return nil, fmt.Errorf("invalid approval link verifier: %w", err)
	}
	return &Verifier{audience: audience, v: v}, nil
}

// keyByID finds kid among keys' verifying keys, refreshing once if keys
// can and the kid is not there.
func keyByID(ctx context.Context, keys Keys, kid string) (any, error) {
	all, err := keys.VerifyingKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", token.ErrKeysUnusable, err)
	}
	if k, ok := all[kid]; ok {
		return k, nil
	}
	if r, ok := keys.(Refresher); ok {
		if all, err = r.RefreshKeys(ctx); err != nil {
			// Perhaps a key added since, perhaps not: ours to retry.
			return nil, fmt.Errorf("%w: kid %.40q (refresh failed: %w: %w)", token.ErrUnknownKey, kid, token.ErrKeysUnusable, err)
		}
		if k, ok := all[kid]; ok {
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: kid %.40q", token.ErrUnknownKey, kid)
}

// Verify checks raw as a link to the approval page of grantID and returns
// what it says. Refusals wrap ErrInvalid, ErrExpired (an *ExpiredError) or
// ErrOtherGrant; an expired link for another grant is ErrExpired, the
// signature and the clock being checked first.
func (v *Verifier) Verify(ctx context.Context, raw, grantID string) (*Claims, error) {
	tok, err := v.v.Verify(ctx, raw, v.audience)
	if err != nil {
		var expired *token.ExpiredError
		switch {
		case errors.As(err, &expired):
			return nil, &ExpiredError{At: expired.At}
		case errors.Is(err, token.ErrKeysUnusable):
			return nil, fmt.Errorf("failed to verify an approval link: %w", err)
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	c := &Claims{Approver: tok.Subject, Expires: tok.Expires, IssuedAt: tok.IssuedAt}
	_, errGrant := tok.Claim(grantClaim, &c.Grant)
	_, errID := tok.Claim("jti", &c.ID)
	if err := errors.Join(errGrant, errID); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	// Signed by us, so these hold unless the key signed something else:
	// checked anyway, as the page trusts them.
	if canon, err := emailaddr.Canonical(c.Approver); err != nil || canon != c.Approver {
		return nil, fmt.Errorf("%w: sub is not a canonical email address", ErrInvalid)
	}
	if c.Grant == "" || c.ID == "" {
		return nil, fmt.Errorf("%w: grant and jti are required", ErrInvalid)
	}
	if c.Grant != grantID {
		return nil, fmt.Errorf("%w: the link is for grant %.80q", ErrOtherGrant, c.Grant)
	}
	return c, nil
}
