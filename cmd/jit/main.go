// Command jit is the one binary for people: `jit local` runs the embedded
// pipeline on this machine, `jit policy lint` checks policy documents.
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
`

// run executes one command and returns the process exit code: 0 success,
// 1 failure (including lint issues), 2 bad usage.
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
		fmt.Fprintf(stderr, "jit: unknown command %q\n%s", args[0], usage)
		return 2
	}
}
