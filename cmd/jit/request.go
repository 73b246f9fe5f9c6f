package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// listFlag collects a repeated flag's values.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// inputsFlag collects --input K=V (a string) and K:=JSON (a number, a
// boolean, any JSON value), as HTTPie spells them: the policy's inputs
// are typed, and a string "5" is not the int 5.
type inputsFlag map[string]any

func (m inputsFlag) String() string { return fmt.Sprint(map[string]any(m)) }

func (m inputsFlag) Set(v string) error {
	i := strings.IndexByte(v, '=')
	if i <= 0 {
		return fmt.Errorf("want K=V or K:=JSON, got %q", v)
	}
	k, val := v[:i], v[i+1:]
	if name, ok := strings.CutSuffix(k, ":"); ok {
		var j any
		if err := json.Unmarshal([]byte(val), &j); err != nil {
			return fmt.Errorf("%s:=%s: not JSON: %w", name, val, err)
		}
		if name == "" {
			return fmt.Errorf("want K:=JSON, got %q", v)
		}
		m[name] = j
		return nil
	}
	m[k] = val
	return nil
}

// runRequest is `jit request`: one grant, or several self-approved
// classic roles of one project at once (batchCreate).
func runRequest(ctx context.Context, cmd *cmdEnv, args []string) error {
	fs := cmd.fs
	duration := fs.String("duration", "", "how long the access should last, ISO 8601 (PT30M, PT2H)")
	justification := fs.String("justification", "", "why you need it")
	inputs := inputsFlag{}
	fs.Var(inputs, "input", "an input of the entitlement: K=V (string) or K:=JSON (number, boolean); repeatable")
	var reviewers listFlag
	fs.Var(&reviewers, "reviewer", "a peer to review a peer-approved role; repeatable")
	wait := fs.Bool("wait", false, "wait until the grant is ACTIVE (exit 0), ends otherwise (exit 3) or --timeout passes (exit 4)")
	timeout := fs.Duration("timeout", 10*time.Minute, "with --wait: how long to wait")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErrorf("name the entitlement to request (jit entitlements lists them)")
	}
	if len(pos) > 1 && (len(inputs) > 0 || len(reviewers) > 0) {
		return usageErrorf("--input and --reviewer are for one entitlement; a request of several takes only self-approved roles")
	}
	if *timeout <= 0 {
		return usageErrorf("--timeout must be positive")
	}
	c, err := cmd.g.client()
	if err != nil {
		return err
	}
	var grants []grantView
	var raw []byte
	if len(pos) == 1 {
		body := map[string]any{"entitlement": pos[0], "requestedDuration": *duration, "justification": *justification}
		if len(inputs) > 0 {
			body["inputs"] = map[string]any(inputs)
		}
		if len(reviewers) > 0 {
			body["reviewers"] = []string(reviewers)
		}
		var g grantView
		if raw, err = c.callJSON(ctx, http.MethodPost, "/v1/grants", nil, body, &g); err != nil {
			return err
		}
		grants = []grantView{g}
	} else {
		body := map[string]any{"entitlements": pos, "requestedDuration": *duration, "justification": *justification}
		var gs grantsView
		if raw, err = c.callJSON(ctx, http.MethodPost, "/v1/grants:batchCreate", nil, body, &gs); err != nil {
			return err
		}
		grants = gs.Grants
	}
	if !*wait {
		if cmd.g.format == "json" {
			return printJSON(cmd.stdout, raw)
		}
		return grantsTable(cmd, grants)
	}
	if cmd.g.format != "json" {
		// The IDs first, so that they are known even if the wait is cut short.
		if err := grantsTable(cmd, grants); err != nil {
			return err
		}
	}
	ids := make([]string, len(grants))
	for i, g := range grants {
		ids[i] = g.ID
	}
	return waitForActive(ctx, c, cmd, ids, *timeout)
}

// grantsTable is the short table of just-created or just-changed grants.
func grantsTable(cmd *cmdEnv, grants []grantView) error {
	rows := make([][]string, 0, len(grants))
	for _, g := range grants {
		rows = append(rows, []string{g.ID, g.Entitlement, g.State})
	}
	return table(cmd.stdout, []string{"ID", "ENTITLEMENT", "STATE"}, rows)
}
