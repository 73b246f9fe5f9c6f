// Package jsonschema validates JSON values against JSON Schema draft
// 2020-12 documents, supporting exactly the keywords the event schemas in
// schemas/ use and refusing every other one when a schema is compiled.
//
// Why our own: every deployed Cloud Function links internal/events, which
// validates the events it publishes and receives. The general-purpose
// library used before (github.com/santhosh-tekuri/jsonschema/v6) compiles
// the metaschemas of every draft in its package init(): about 5 ms of CPU
// and 1.7 MB at every function's start whether or not an event is ever
// validated, the largest part of the cold start left (issue 14). Our
// schemas need a small subset of the specification, which fits in about
// a thousand lines that cost nothing until first used.
//
// The subset:
//
//   - assertions: type, enum, const, required, additionalProperties,
//     minLength and maxLength (in Unicode code points), pattern,
//     minItems and maxItems, minimum and maximum, format;
//   - applicators: properties, additionalProperties, items, allOf,
//     if/then, and $ref to "#/$defs/<name>" of the same document ($defs
//     at the root only, not recursive);
//   - annotations, which are read and otherwise ignored: $schema (which
//     must name draft 2020-12), $id (at the root only), title,
//     description, examples.
//
// Anything else — an unknown keyword, a keyword in a place it does not
// belong, a format other than date-time, email and uri, a pattern Go's
// regexp package does not compile (patterns are ECMA-262 in the
// specification; ours are the common subset) — is refused by Compile with
// an error naming the keyword and its JSON pointer, so a schema change can
// never silently stop being checked.
//
// Formats are asserted, as the previous validator was configured to
// (draft 2020-12 makes them annotations by default): date-time per RFC
// 3339 section 5.6, email per RFC 5321 section 4.1.2 (Mailbox), uri per
// RFC 3986 (an absolute URI).
//
// Conformance is kept by tests of internal/events: every schema of
// schemas/, against a corpus of the schemas' examples, the payloads the
// package's tests validate and systematic mutations of them, and a fuzz
// test on arbitrary JSON, must be judged alike by this package and by the
// previous library, which remains a test-only dependency.
//
// Compile a schema once (it is safe for concurrent use once compiled) and
// decode instances with Decode, which keeps numbers exact.
package jsonschema
