// Package envelope verifies the signed envelopes that other systems
// (incident tooling, ticketing, chat bots) attach to the access requests
// they publish to the requests topic on behalf of a user (docs/architecture.md §1, §5).
// Pub/Sub does not authenticate publishers to subscribers, so the message
// itself must say, verifiably, who sent it and for whom.
//
// # The message
//
// data is the JSON request body, the same shape as POST /v1/grants:
//
//	{"entitlement": "...", "requestedDuration": "PT1H", "justification": "...", "inputs": {...}}
//
// and the attribute "jit-envelope" ([Attribute]) is a compact JWS signed with
// RS256 by the calling system's Google service account: on Google Cloud with
// the IAM Credentials signJwt API (which writes the header
// {"alg":"RS256","kid":...,"typ":"JWT"} itself), locally with
// localoidc.Signer.Sign. The claims ([Claims], built by [NewClaims]):
//
//	iss, sub     the service account's email (both, equal)
//	aud          the configured audience, e.g. "jit-requests"
//	user         the requester's email: on whose behalf
//	entitlement  the entitlement requested; must equal data's "entitlement"
//	jti          a unique id per issuer, single use
//	iat, exp     integer seconds; exp - iat ≤ MaxLifetime (5 min)
//	body_sha256  base64url (unpadded) of SHA-256(data), so data cannot be changed
//
// # Checks, in order
//
// Each refusal is a *[Refused] with a [Reason] (errors.Is(err, [ErrRefused])):
//
//  1. the attribute is there and not empty (unsigned); data is at most
//     [MaxBody] bytes and the token at most [MaxToken] (malformed);
//  2. strict JWS parsing (package token, as for every JWT of the
//     project): three strict base64url segments, header and
//     claims are JSON objects read strictly (package jsonstrict: no
//     duplicate names and no names that differ only in case, at any
//     depth, nothing after the object), the header has exactly alg, kid
//     and optionally typ "JWT" (no jku, jwk, x5u, crit…),
//     alg is exactly "RS256" ("none" is unsigned, any other alg is
//     bad_signature, so HS256-with-the-public-key never reaches a MAC);
//     claims are read by exact, case-sensitive names (malformed);
//  3. the claimed issuer is one the policy trusts as a requester on behalf
//     of others (untrusted_signer) — checked BEFORE any key is fetched, so
//     an attacker cannot make the verifier fetch keys for arbitrary
//     accounts;
//  4. the issuer's keys ([KeySource]) contain the token's kid
//     (unknown_signer), and the RS256 signature verifies (bad_signature);
//  5. aud is exactly the configured string (wrong_audience; a list is
//     refused too); iat and exp are integers, exp > iat (malformed); now <
//     exp + Skew (expired); iat and nbf ≤ now + Skew (not_yet_valid); exp -
//     iat ≤ MaxLifetime (too_long_lived); sub = iss, user is an email,
//     entitlement and jti (≤ 128 printable ASCII) are present (malformed).
//     Unknown claims are ignored;
//  6. body_sha256 matches data (tampered); data decodes strictly, as the
//     header and claims, with exact field names and no unknown fields
//     (malformed); its entitlement equals the claim (mismatch).
//
// Errors that are not refusals (the key source failed) are returned as
// plain errors: the subscriber should let Pub/Sub redeliver the message. A
// refusal is permanent: log it with [SecurityEvent] and acknowledge the
// message so it is not retried (docs/google-cloud.md §5: a failed invocation is
// redelivered only if retries are on, and then for 24 h).
//
// # Replays
//
// Verify remembers nothing: the same valid envelope verifies every time it
// is delivered, with the same [Request].Key, "envelope:" + issuer + "/" +
// jti. Replay protection lives in the grant ledger: the key is the grant's
// RequestKey, which Ledger.Create records as an idempotency key in the
// same transaction that stores the grant and refuses when it is there
// already (grant.ErrDuplicateRequest); a request the policy refuses has
// its key burnt with Ledger.Once (package lifecycle). So an envelope is
// consumed exactly when its request is decided: a transient failure
// before that leaves it to Pub/Sub's redelivery instead of losing it as
// a "replay", and a broken copy, which never verifies, cannot burn the
// genuine envelope's key. After exp + Skew the envelope is refused as
// expired anyway; the ledger keeps the key far longer (RequestKeyTTL in
// package ledger).
//
// # Keys
//
// Google publishes a service account's public keys as a JWKS at
// https://www.googleapis.com/service_accounts/v1/metadata/jwk/{EMAIL}
// (signJwt reference: keys stay published for at least 12 h after a
// signature). [GoogleKeys] keeps one token.KeySet per trusted issuer,
// which caches them and refetches (rate-limited) when a kid is not in the
// cached set; [StaticKeys] and [JWKSFunc] serve fixed sets (tests, the
// local pipeline with localoidc's JWKS()).
//
// # Fuzzing
//
// FuzzVerify checks that no input panics the verifier and that nothing is
// accepted but the envelopes the test signed itself:
//
//	go test -run='^$' -fuzz=FuzzVerify -fuzztime=60s ./internal/envelope/
package envelope
