// Package iamcond holds the IAM condition (CEL) pieces shared by the
// pipeline and by the local IAM fake: splitting a condition into its
// top-level && clauses, recognising JIT Access eligibility markers and the
// resource condition that goes with them, writing and recognising the
// temporary activation condition, and the cel-go environment that mirrors
// what IAM Conditions accept.
//
// The formats follow JIT Access v1 exactly (docs/jit-access.md §1.1, §1.2,
// §4) so that users migrating from it keep their eligible bindings, and
// their tooling keeps recognising our activations. Everything here is a
// pure function without I/O.
package iamcond
