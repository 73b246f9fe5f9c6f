package main

import (
	"strconv"
	"time"
)

// The API's documents, as far as the tables show them. The CLI keeps its
// own copies rather than importing internal/api's, so that fields the API
// adds later pass through --format=json untouched and cost the tables
// nothing.

type entitlementView struct {
	ID                string `json:"id"`
	Description       string `json:"description"`
	ApprovalRequired  bool   `json:"approvalRequired"`
	RequiredApprovals int    `json:"requiredApprovals"`
	MinDuration       string `json:"minDuration"`
	MaxDuration       string `json:"maxDuration"`
	Classic           *struct {
		ActivationType string `json:"activationType"`
	} `json:"classic"`
}

type listingView struct {
	Entitlements []entitlementView `json:"entitlements"`
	Incomplete   bool              `json:"incomplete"`
}

type decisionView struct {
	Approver string    `json:"approver"`
	Approved bool      `json:"approved"`
	Reason   string    `json:"reason"`
	Time     time.Time `json:"time"`
}

type timelineView struct {
	Time    time.Time `json:"time"`
	State   string    `json:"state"`
	Event   string    `json:"event"`
	Actor   string    `json:"actor"`
	Message string    `json:"message"`
}

type grantView struct {
	ID                string         `json:"id"`
	Entitlement       string         `json:"entitlement"`
	Requester         string         `json:"requester"`
	State             string         `json:"state"`
	RequestedDuration string         `json:"requestedDuration"`
	Justification     string         `json:"justification"`
	CreateTime        time.Time      `json:"createTime"`
	StartTime         *time.Time     `json:"startTime"`
	EndTime           *time.Time     `json:"endTime"`
	ApprovalRequired  bool           `json:"approvalRequired"`
	RequiredApprovals int            `json:"requiredApprovals"`
	ApprovalDeadline  *time.Time     `json:"approvalDeadline"`
	Approvers         []string       `json:"approvers"`
	Reviewers         []string       `json:"reviewers"`
	Approvals         []decisionView `json:"approvals"`
	Denial            *decisionView  `json:"denial"`
	Timeline          []timelineView `json:"timeline"`
}

type grantsView struct {
	Grants []grantView `json:"grants"`
}

// approval says how an entitlement is approved for the caller.
func (e *entitlementView) approval() string {
	switch {
	case e.Classic != nil && e.Classic.ActivationType == "MPA":
		return "peer"
	case !e.ApprovalRequired:
		return "self"
	case e.RequiredApprovals > 1:
		return strconv.Itoa(e.RequiredApprovals) + " approvals"
	default:
		return "1 approval"
	}
}

// finalState reports whether a grant in state s will never become ACTIVE
// from here: the final states, and those on the way to one.
func finalState(s string) bool {
	switch s {
	case "DENIED", "EXPIRED", "ACTIVATION_FAILED", "WITHDRAWN", "WITHDRAWING", "REVOKED", "REVOKING", "ENDED":
		return true
	}
	return false
}
