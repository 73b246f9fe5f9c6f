// Package events holds the pipeline's CloudEvents: their types, their one
// data shape, their JSON Schemas (schemas/ at the module root, embedded),
// validation on emit and on receipt, publication to the events topic as
// binary-mode CloudEvents, the one place a Pub/Sub-wrapped event is
// unwrapped, and the audit log line each transition writes.
package events

import (
	"time"

	"github.com/jitpipeline/jit/internal/grant"
)

// Source is the CloudEvents source of events the pipeline emits.
const Source = "//jit.pipeline/grants"

// Event types. Transitions of a grant (emitted by the functions through the
// ledger's outbox) and commands (emitted by the lifecycle workflow, which
// carry a callback URL to resume it).
const (
	// Transitions.
	TypeRequested        = "dev.jitpipeline.grant.requested.v1"
	TypeApproved         = "dev.jitpipeline.grant.approved.v1"
	TypeDenied           = "dev.jitpipeline.grant.denied.v1"
	TypeExpired          = "dev.jitpipeline.grant.expired.v1"
	TypeActivated        = "dev.jitpipeline.grant.activated.v1"
	TypeActivationFailed = "dev.jitpipeline.grant.activation_failed.v1"
	TypeWithdrawing      = "dev.jitpipeline.grant.withdrawing.v1"
	TypeRevoking         = "dev.jitpipeline.grant.revoking.v1"
	TypeEnded            = "dev.jitpipeline.grant.ended.v1"
	TypeRevoked          = "dev.jitpipeline.grant.revoked.v1"
	TypeWithdrawn        = "dev.jitpipeline.grant.withdrawn.v1"
	// TypeRevocationVerified records that the policy was read back after a
	// removal and no binding outlives the grant.
	TypeRevocationVerified = "dev.jitpipeline.grant.revocation_verified.v1"

	// Commands from the workflow.
	TypeApprovalRequested   = "dev.jitpipeline.approval.requested.v1"
	TypeActivationRequested = "dev.jitpipeline.activation.requested.v1"
	TypeRevokeRequested     = "dev.jitpipeline.revoke.requested.v1"
)

// Transitions lists the types of the grants' transitions, the events on
// the events topic (the audit trail), which the notifications follow.
var Transitions = []string{
	TypeRequested, TypeApproved, TypeDenied, TypeExpired, TypeActivated, TypeActivationFailed,
	TypeWithdrawing, TypeRevoking, TypeEnded, TypeRevoked, TypeWithdrawn, TypeRevocationVerified,
}

// Types lists every event type; each has a schema in schemas/<type>.json.
var Types = []string{
	TypeRequested, TypeApproved, TypeDenied, TypeExpired, TypeActivated, TypeActivationFailed,
	TypeWithdrawing, TypeRevoking, TypeEnded, TypeRevoked, TypeWithdrawn, TypeRevocationVerified,
	TypeApprovalRequested, TypeActivationRequested, TypeRevokeRequested,
}

// Data is the payload of every event: a summary of the grant after the
// transition, and what is specific to the event. The schemas say which
// fields each type requires.
type Data struct {
	GrantID           string            `json:"grantId"`
	Entitlement       string            `json:"entitlement"`
	Requester         string            `json:"requester"`
	State             grant.State       `json:"state"`
	Justification     string            `json:"justification,omitempty"`
	RequestedDuration string            `json:"requestedDuration,omitempty"` // ISO 8601
	Privileges        []grant.Privilege `json:"privileges,omitempty"`
	ApprovalRequired  bool              `json:"approvalRequired,omitempty"`
	RequiredApprovals int               `json:"requiredApprovals,omitempty"`
	Approvers         []string          `json:"approvers,omitempty"`
	ApprovalDeadline  *time.Time        `json:"approvalDeadline,omitempty"`
	StartTime         *time.Time        `json:"startTime,omitempty"`
	EndTime           *time.Time        `json:"endTime,omitempty"`
	// Actor is who caused the transition: a user, or a service.
	Actor   string `json:"actor,omitempty"`
	Message string `json:"message,omitempty"`
	// CallbackURL (commands only) resumes the workflow execution.
	CallbackURL string `json:"callbackUrl,omitempty"`
	// EndCallbackURL (activation.requested only) ends the wait for the end
	// of the access early: withdraw and revoke call it.
	EndCallbackURL string `json:"endCallbackUrl,omitempty"`
	// Reason of a revoke command: "end", "withdraw" or "revoke".
	Reason string `json:"reason,omitempty"`
}
