// Command jit is the one binary for people: `jit local` runs the embedded
// pipeline on this machine, `jit policy lint` checks policy documents, and
// the other commands request, approve and list grants through the API
// (docs/cli.md).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: jit <command> [flags]

commands:
  local                     run the embedded pipeline on loopback (see README)
  policy lint [flags] FILE… check policy documents; exit 1 on any issue

  entitlements [--project ID]               what you may request
  request ENTITLEMENT… --duration PT1H --justification TEXT
          [--input K=V|K:=JSON …] [--reviewer EMAIL …] [--wait [--timeout 10m]]
  grants [--view approvable|all] [--state S] [--entitlement E] [--requester EMAIL]
  grant ID                                  one grant and its timeline
  approvals                                 grants awaiting your approval
  approve ID [--reason TEXT]
  deny ID --reason TEXT
  withdraw ID                               end your request or access now
  revoke ID --reason TEXT                   end someone's access (RECONCILE)
  export [--format csv|json] [--state S] [-o FILE]   (EXPORT)

global flags of those commands:
  --api URL        the API (env JIT_API, default http://127.0.0.1:8080)
  --as EMAIL       local pipeline only: act as EMAIL (X-Debug-Principal);
                   refused (exit 2) unless --api is a loopback address
  --format F       table (default) or json: the API's JSON, indented
  --iap-client-id  audience of the ID token (env JIT_IAP_CLIENT_ID)
  --approval-api URL  approve and deny only: the approval function's URL
                   (env JIT_APPROVAL_API; terraform's pages_url; default --api)
  Without --as, the Google ID token in JIT_ID_TOKEN, or else the one
  gcloud auth print-identity-token prints, is sent as a bearer token.

exit codes: 0 success; 1 the API refused or failed (jit: CODE: field: message);
  2 bad usage; 3 --wait: the grant ended without becoming ACTIVE;
  4 --wait: timed out. More in docs/cli.md.
`

// run executes one command and returns the process exit code: 0 success,
// 1 failure (including lint issues and the API's refusals), 2 bad usage,
// and for request --wait 3 (the grant ended without becoming ACTIVE) and
// 4 (timed out).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "local":
		if err := runLocal(ctx, args[1:]); err != nil {
			fmt.Fprintln(stderr, "jit local:", err)
			return 1
		}
		return 0
	case "policy":
		return runPolicy(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		if c, ok := apiCommands[args[0]]; ok {
			return runAPICommand(ctx, args[0], c, args[1:], stdout, stderr)
		}
		fmt.Fprintf(stderr, "jit: unknown command %q\n%s", args[0], usage)
		return 2
	}
}
