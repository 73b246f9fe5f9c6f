package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// runGrants is `jit grants`: the caller's grants, those awaiting their
// approval (--view approvable), or everyone's (--view all, for holders of
// RECONCILE or EXPORT), filtered by the API.
func runGrants(ctx context.Context, cmd *cmdEnv, args []string) error {
	fs := cmd.fs
	view := fs.String("view", "", "approvable: awaiting your approval; all: everyone's (RECONCILE or EXPORT)")
	state := fs.String("state", "", "only grants in this state (ACTIVE, APPROVAL_AWAITED, …)")
	entitlement := fs.String("entitlement", "", "only grants of this entitlement")
	requester := fs.String("requester", "", "only grants requested by this email")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("unexpected arguments: %q (jit grant ID shows one grant)", pos)
	}
	if *view != "" && *view != "approvable" && *view != "all" {
		return usageErrorf("--view must be approvable or all, got %q", *view)
	}
	q := url.Values{}
	for k, v := range map[string]string{"view": *view, "state": *state, "entitlement": *entitlement, "requester": *requester} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return listGrants(ctx, cmd, q)
}

// runApprovals is `jit approvals`: `jit grants --view approvable`.
func runApprovals(ctx context.Context, cmd *cmdEnv, args []string) error {
	pos, err := parseFlags(cmd.fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErrorf("unexpected arguments: %q", pos)
	}
	return listGrants(ctx, cmd, url.Values{"view": {"approvable"}})
}

func listGrants(ctx context.Context, cmd *cmdEnv, q url.Values) error {
	c, err := cmd.g.client()
	if err != nil {
		return err
	}
	var gs grantsView
	raw, err := c.getJSON(ctx, "/v1/grants", q, &gs)
	if err != nil {
		return err
	}
	if cmd.g.format == "json" {
		return printJSON(cmd.stdout, raw)
	}
	now := time.Now()
	rows := make([][]string, 0, len(gs.Grants))
	for i := range gs.Grants {
		g := &gs.Grants[i]
		rows = append(rows, []string{g.ID, g.Entitlement, g.Requester, g.State, timeLeft(g, now), shortTime(g.CreateTime)})
	}
	return table(cmd.stdout, []string{"ID", "ENTITLEMENT", "REQUESTER", "STATE", "TIME LEFT", "CREATED"}, rows)
}

// runGrant is `jit grant ID`: one grant and its timeline.
func runGrant(ctx context.Context, cmd *cmdEnv, args []string) error {
	pos, err := parseFlags(cmd.fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErrorf("name one grant ID")
	}
	c, err := cmd.g.client()
	if err != nil {
		return err
	}
	var g grantView
	raw, err := c.getJSON(ctx, grantPath(pos[0], ""), nil, &g)
	if err != nil {
		return err
	}
	if cmd.g.format == "json" {
		return printJSON(cmd.stdout, raw)
	}
	return grantDetail(cmd, &g, time.Now())
}

// grantDetail prints one grant: its fields, then its timeline.
func grantDetail(cmd *cmdEnv, g *grantView, now time.Time) error {
	fields := [][]string{
		{"ID:", g.ID},
		{"Entitlement:", g.Entitlement},
		{"Requester:", g.Requester},
		{"State:", g.State},
		{"Duration:", g.RequestedDuration},
		{"Justification:", g.Justification},
		{"Created:", longTime(g.CreateTime)},
	}
	if g.StartTime != nil {
		fields = append(fields, []string{"Start:", longTime(*g.StartTime)}, []string{"End:", longTime(*g.EndTime)})
	}
	if left := timeLeft(g, now); left != "-" {
		fields = append(fields, []string{"Time left:", left})
	}
	if g.ApprovalRequired {
		fields = append(fields, []string{"Approvals:", fmt.Sprintf("%d of %d", len(g.Approvals), max(g.RequiredApprovals, 1))})
		if g.ApprovalDeadline != nil {
			fields = append(fields, []string{"Approve by:", longTime(*g.ApprovalDeadline)})
		}
	}
	if len(g.Reviewers) > 0 {
		fields = append(fields, []string{"Reviewers:", strings.Join(g.Reviewers, ", ")})
	}
	for _, a := range g.Approvals {
		fields = append(fields, []string{"Approved by:", decisionLine(a)})
	}
	if g.Denial != nil {
		fields = append(fields, []string{"Denied by:", decisionLine(*g.Denial)})
	}
	w := cmd.stdout
	if err := table(w, nil, fields); err != nil {
		return err
	}
	fmt.Fprintln(w)
	rows := make([][]string, 0, len(g.Timeline))
	for _, e := range g.Timeline {
		rows = append(rows, []string{longTime(e.Time), e.State, e.Event, orDash(e.Actor), orDash(e.Message)})
	}
	return table(w, []string{"TIME", "STATE", "EVENT", "ACTOR", "MESSAGE"}, rows)
}

func decisionLine(d decisionView) string {
	s := d.Approver + " at " + longTime(d.Time)
	if d.Reason != "" {
		s += ": " + d.Reason
	}
	return s
}
