package auth

import "github.com/jitpipeline/jit/internal/token"

// MaxTokenBytes bounds a token before any decoding.
const MaxTokenBytes = token.DefaultMaxBytes

// The verifiers' refusals are the token package's; test with errors.Is.
var (
	ErrMissing      = token.ErrMissing
	ErrMalformed    = token.ErrMalformed
	ErrAlgorithm    = token.ErrAlgorithm
	ErrUnknownKey   = token.ErrUnknownKey
	ErrSignature    = token.ErrSignature
	ErrIssuer       = token.ErrIssuer
	ErrAudience     = token.ErrAudience
	ErrExpired      = token.ErrExpired
	ErrNotYetValid  = token.ErrNotYetValid
	ErrClaims       = token.ErrClaims
	ErrKeysUnusable = token.ErrKeysUnusable
)

// fetchTimeout bounds a key fetch when the caller gives no HTTP client or
// context deadline.
const fetchTimeout = token.FetchTimeout
