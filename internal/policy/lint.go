package policy

import (
	"fmt"
	"sort"
	"strings"
)

// Code classifies a lint issue. The codes are JIT Groups' where the
// problem is the same, so administrators migrating see familiar names; the
// last three are ours, for the constraints and checks JIT Groups lacks.
type Code string

const (
	FileInvalidSyntax             Code = "FILE_INVALID_SYNTAX"
	FileUnknownProperty           Code = "FILE_UNKNOWN_PROPERTY"
	FileInvalidVersion            Code = "FILE_INVALID_VERSION"
	EnvironmentMissing            Code = "ENVIRONMENT_MISSING"
	EnvironmentInvalid            Code = "ENVIRONMENT_INVALID"
	SystemInvalid                 Code = "SYSTEM_INVALID"
	GroupInvalid                  Code = "GROUP_INVALID"
	ACLInvalidPrincipal           Code = "ACL_INVALID_PRINCIPAL"
	ACLInvalidPermission          Code = "ACL_INVALID_PERMISSION"
	ConstraintInvalidType         Code = "CONSTRAINT_INVALID_TYPE"
	ConstraintInvalidExpiry       Code = "CONSTRAINT_INVALID_EXPIRY"
	ConstraintInvalidExpression   Code = "CONSTRAINT_INVALID_EXPRESSION"
	ConstraintInvalidVariableDecl Code = "CONSTRAINT_INVALID_VARIABLE_DECLARATION"
	PrivilegeInvalidResourceID    Code = "PRIVILEGE_INVALID_RESOURCE_ID"
	PrivilegeDuplicateResourceID  Code = "PRIVILEGE_DUPLICATE_RESOURCE_ID"
	PrivilegeInvalidRole          Code = "PRIVILEGE_INVALID_ROLE"
	ConstraintInvalidApprovals    Code = "CONSTRAINT_INVALID_APPROVALS"
	ConstraintInvalidConcurrency  Code = "CONSTRAINT_INVALID_CONCURRENCY"
	PrivilegeInvalidCondition     Code = "PRIVILEGE_INVALID_CONDITION"
)

// Issue is one lint finding, with the position of the offending YAML node
// (1-based) and the scope it was found in (environment, environment.system
// or environment.system.group).
type Issue struct {
	Code    Code   `json:"code"`
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Scope   string `json:"scope"`
	Message string `json:"message"`
}

func (i Issue) String() string {
	return fmt.Sprintf("%d:%d: %s: %s (%s)", i.Line, i.Column, i.Code, i.Message, i.Scope)
}

// Issues are every problem of a document, in file order. As an error it
// reads as one line per issue.
type Issues []Issue

func (is Issues) Error() string {
	lines := make([]string, len(is))
	for i, iss := range is {
		lines[i] = iss.String()
	}
	return "invalid policy document:\n" + strings.Join(lines, "\n")
}

func (is Issues) sort() {
	sort.SliceStable(is, func(a, b int) bool {
		if is[a].Line != is[b].Line {
			return is[a].Line < is[b].Line
		}
		return is[a].Column < is[b].Column
	})
}
