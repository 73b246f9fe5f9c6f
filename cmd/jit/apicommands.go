package main

import (
	"context"
	"flag"
	"io"
)

// apiCommand is one of the people's commands that talk to the API.
type apiCommand struct {
	usage string // its usage line(s), also in `jit help`
	run   func(ctx context.Context, cmd *cmdEnv, args []string) error
}

// cmdEnv is what a command runs with: its flag set (the global flags
// already on it) and where it writes.
type cmdEnv struct {
	fs             *flag.FlagSet
	g              *globals
	stdout, stderr io.Writer
}

// apiCommands are the commands by name. Each registers its own flags on
// cmd.fs and parses with parseFlags.
var apiCommands = map[string]apiCommand{
	"entitlements": {usage: "entitlements [--project ID]", run: runEntitlements},
	"request": {usage: "request ENTITLEMENT… --duration PT1H --justification TEXT [--input K=V|K:=JSON …]\n" +
		"          [--reviewer EMAIL …] [--wait [--timeout 10m]]", run: runRequest},
	"grants":    {usage: "grants [--view approvable|all] [--state S] [--entitlement E] [--requester EMAIL]", run: runGrants},
	"grant":     {usage: "grant ID", run: runGrant},
	"approvals": {usage: "approvals", run: runApprovals},
	"approve":   {usage: "approve ID [--reason TEXT] [--approval-api URL]", run: action("approve", false)},
	"deny":      {usage: "deny ID --reason TEXT [--approval-api URL]", run: action("deny", true)},
	"withdraw":  {usage: "withdraw ID", run: action("withdraw", false)},
	"revoke":    {usage: "revoke ID --reason TEXT", run: action("revoke", true)},
	"export":    {usage: "export [--format csv|json] [--state S] [-o FILE]", run: runExport},
}

// runAPICommand runs the named API command and returns its exit code.
func runAPICommand(ctx context.Context, name string, c apiCommand, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("jit "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	usage := "usage: jit " + c.usage + "\n" + globalUsage
	fs.Usage = func() {
		io.WriteString(stderr, usage) //nolint:errcheck // stderr
		fs.PrintDefaults()
	}
	g := addGlobals(fs, name != "export")
	err := c.run(ctx, &cmdEnv{fs: fs, g: g, stdout: stdout, stderr: stderr}, args)
	return report(stderr, usage, err)
}

const globalUsage = `global flags: --api URL (env JIT_API, default http://127.0.0.1:8080)
  --as EMAIL (local pipeline on loopback only) --format table|json
  --iap-client-id ID (env JIT_IAP_CLIENT_ID)
`
