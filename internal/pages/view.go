package pages

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"

	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/isoduration"
	"github.com/jitpipeline/jit/internal/lifecycle"
)

// stateTexts say what each state means to an approver.
var stateTexts = map[grant.State]string{
	grant.ApprovalAwaited:  "awaiting approval",
	grant.Scheduled:        "approved; scheduled to start later",
	grant.Activating:       "approved; access is being granted",
	grant.Active:           "approved; access is active",
	grant.ActivationFailed: "approved, but granting access failed",
	grant.Denied:           "denied",
	grant.Expired:          "expired: not decided in time",
	grant.Revoking:         "access is being revoked",
	grant.Revoked:          "revoked",
	grant.Ended:            "ended",
	grant.Withdrawing:      "withdrawn by the requester; access is being removed",
	grant.Withdrawn:        "withdrawn by the requester",
}

// renderGrant shows g as it is now to caller; notice, if any, says what
// became of their last submission, and reason refills the form.
func (h *Handler) renderGrant(w http.ResponseWriter, status int, g *grant.Grant, caller lifecycle.Caller, raw string, notice *noticeView, reason string) {
	v := grantView{
		Title: "Access request " + g.ID, ID: g.ID, Requester: g.Requester, Entitlement: g.Entitlement,
		Duration:      fmt.Sprintf("%s (%s)", isoduration.Human(g.RequestedDuration), isoduration.Format(g.RequestedDuration)),
		Justification: g.Justification, Privileges: g.Privileges, State: g.State, StateText: stateTexts[g.State],
		Deadline: newTimeView(g.ApprovalDeadline), RequiredApprovals: g.RequiredApprovals,
		Caller: caller.Email, Notice: notice,
	}
	if v.StateText == "" {
		v.StateText = string(g.State)
	}
	for _, k := range slices.Sorted(maps.Keys(g.Inputs)) {
		v.Inputs = append(v.Inputs, inputView{Name: k, Value: fmt.Sprint(g.Inputs[k])})
	}
	for _, d := range g.Decisions {
		v.Decisions = append(v.Decisions, decisionView{Approver: d.Approver, Approved: d.Approved, Reason: d.Reason, Time: newTimeView(d.Time)})
	}
	now := h.clock.Now()
	switch {
	case g.State != grant.ApprovalAwaited:
		v.Closed = "This request is no longer awaiting approval; there is nothing to decide."
	case g.DecidedBy(caller.Email):
		v.Closed = "You have already decided on this request."
	case !g.ApprovalDeadline.IsZero() && !now.Before(g.ApprovalDeadline):
		v.Closed = "The approval window closed at " + v.Deadline.Text + "; it can no longer be decided."
	default:
		v.Form = &formView{Action: "/approvals/" + url.PathEscape(g.ID), Token: raw, CSRF: h.csrf(caller.Email, g.ID, raw), Reason: reason, ReasonMax: lifecycle.MaxReason}
	}
	render(w, status, "grant", v)
}
