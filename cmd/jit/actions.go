package main

import (
	"context"
	"net/http"
	"os"
)

// action is `jit approve|deny|withdraw|revoke ID`: POST
// /v1/grants/{id}:verb with {"reason"}. needReason makes --reason
// required, as the API requires it for a denial and a revocation.
func action(verb string, needReason bool) func(context.Context, *cmdEnv, []string) error {
	return func(ctx context.Context, cmd *cmdEnv, args []string) error {
		var reason *string
		if verb != "withdraw" {
			reason = cmd.fs.String("reason", "", "why (shown to the requester and in the audit log)")
		}
		approval := verb == "approve" || verb == "deny"
		if approval {
			cmd.fs.StringVar(&cmd.g.approvalAPI, "approval-api", os.Getenv("JIT_APPROVAL_API"), "URL of the approval function, which serves approve and deny on Google Cloud (terraform output pages_url; env JIT_APPROVAL_API; default: --api)")
		}
		pos, err := parseFlags(cmd.fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageErrorf("name one grant ID")
		}
		body := map[string]any{}
		if reason != nil {
			if needReason && *reason == "" {
				return usageErrorf("--reason is required to %s", verb)
			}
			if *reason != "" {
				body["reason"] = *reason
			}
		}
		newClient := cmd.g.client
		if approval {
			newClient = cmd.g.approvalClient
		}
		c, err := newClient()
		if err != nil {
			return err
		}
		var g grantView
		raw, err := c.callJSON(ctx, http.MethodPost, grantPath(pos[0], verb), nil, body, &g)
		if err != nil {
			return err
		}
		if cmd.g.format == "json" {
			return printJSON(cmd.stdout, raw)
		}
		return grantsTable(cmd, []grantView{g})
	}
}
