package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// The exit codes of the API commands (docs/cli.md, `jit help`).
const (
	exitOK        = 0
	exitFailed    = 1 // the API refused or failed, or the call did not get through
	exitUsage     = 2
	exitNotActive = 3 // --wait: the grant reached a final state other than ACTIVE
	exitTimeout   = 4 // --wait: --timeout passed first
)

// usageError is bad usage: exit 2, with the command's usage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitError carries an exit code other than 1 with its message.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// errHelp is -h: the usage was printed and that is a success.
var errHelp = errors.New("help requested")

// report prints err as `jit: …` and returns its exit code. An API
// refusal prints as `jit: CODE: field: message`.
func report(stderr io.Writer, usage string, err error) int {
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "jit: %s\n%s", ue.msg, usage)
		return exitUsage
	case errors.As(err, &ee):
		fmt.Fprintln(stderr, "jit:", ee.msg)
		return ee.code
	default:
		fmt.Fprintln(stderr, "jit:", err)
		return exitFailed
	}
}

// parseFlags parses args with flags and positional arguments in any order
// (`jit approve ID --as carol@example.com`), which package flag alone does
// not: it stops at the first positional argument. "--" ends the flags.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			// package flag has printed the error and the flags.
			return nil, &exitError{code: exitUsage, msg: "bad usage; see jit help"}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
