package sqlite_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/iamqueue"
	"github.com/jitpipeline/jit/internal/ledger/ledgertest"
	"github.com/jitpipeline/jit/internal/ledger/sqlite"
)

func open(t *testing.T, path string, opts ...sqlite.Option) *sqlite.Ledger {
	t.Helper()
	l, err := sqlite.Open(path, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// rawDSN opens path with no parameters, bypassing the package; a file: URI
// so that "?" and "#" in the path stay part of it.
func rawDSN(path string) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath()
}

func TestContract(t *testing.T) {
	t.Parallel()
	ledgertest.Run(t, func(t *testing.T, clk clock.Clock) grant.Ledger {
		return open(t, filepath.Join(t.TempDir(), "ledger.db"), sqlite.WithClock(clk))
	})
}

func TestJournalContract(t *testing.T) {
	t.Parallel()
	ledgertest.RunJournal(t, func(t *testing.T, clk clock.Clock) ledgertest.Journal {
		return open(t, filepath.Join(t.TempDir(), "ledger.db"), sqlite.WithClock(clk))
	})
}

func TestIAMQueueContract(t *testing.T) {
	t.Parallel()
	ledgertest.RunQueue(t, func(t *testing.T, clk clock.Clock) iamqueue.Queue {
		return open(t, filepath.Join(t.TempDir(), "ledger.db"), sqlite.WithClock(clk)).IAMQueue()
	})
}

// TestReopen: what one Ledger wrote, a Ledger opened later on the same
// file reads, idempotency keys included (docs/architecture.md §7: a restart loses
// nothing).
func TestReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "sub dir", "a?b#c%20", "ledger.db")
	clk := clock.NewManual(ledgertest.Start)
	l, err := sqlite.Open(path, sqlite.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Create(t.Context(), ledgertest.Full("g-reopen")); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Update(t.Context(), "g-reopen", func(g *grant.Grant) error { g.State = grant.Ended; return nil }); err != nil {
		t.Fatal(err)
	}
	if first, err := l.Once(t.Context(), "k", time.Hour); err != nil || !first {
		t.Fatalf("Once = %v, %v", first, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = open(t, path, sqlite.WithClock(clk))
	g, err := l.Get(t.Context(), "g-reopen")
	if err != nil {
		t.Fatal(err)
	}
	if g.State != grant.Ended || g.Version != 2 {
		t.Errorf("after reopening: state %s version %d, want ENDED 2", g.State, g.Version)
	}
	if first, err := l.Once(t.Context(), "k", time.Hour); err != nil || first {
		t.Errorf("Once after reopening = %v, %v; want false", first, err)
	}
	// WAL is what makes a kill -9 harmless; it is a property of the file.
	db, err := sql.Open("sqlite", rawDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
}

// TestNewerSchema: a file written by a newer version of the package is
// refused rather than misread.
func TestNewerSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ledger.db")
	open(t, path).Close()
	db, err := sql.Open("sqlite", rawDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if l, err := sqlite.Open(path); err == nil {
		l.Close()
		t.Fatal("Open of a newer schema succeeded")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open: %v, want a schema version error", err)
	}
}

// TestTwoHandles: two Ledgers on one file (as two processes would be)
// updating the same grant at once lose nothing and never fail with
// "database is locked": the busy timeout, BEGIN IMMEDIATE and the version
// check carry it.
func TestTwoHandles(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ledger.db")
	a, b := open(t, path), open(t, path)
	if err := a.Create(t.Context(), &grant.Grant{ID: "g-shared"}); err != nil {
		t.Fatal(err)
	}
	const perHandle = 25
	var wg sync.WaitGroup
	for _, l := range []*sqlite.Ledger{a, b} {
		for i := range perHandle {
			wg.Go(func() {
				if _, err := l.Update(t.Context(), "g-shared", func(g *grant.Grant) error {
					g.Record("jit.test", ledgertest.Start, "", strconv.Itoa(i))
					return nil
				}); err != nil {
					t.Errorf("Update: %v", err)
				}
				if _, err := l.Once(t.Context(), fmt.Sprint("k", i), time.Hour); err != nil {
					t.Errorf("Once: %v", err)
				}
			})
		}
	}
	wg.Wait()
	g, err := b.Get(t.Context(), "g-shared")
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Timeline) != 2*perHandle || g.Version != 2*perHandle+1 {
		t.Errorf("%d entries, version %d; want %d, %d", len(g.Timeline), g.Version, 2*perHandle, 2*perHandle+1)
	}
}

// TestTwoHandlesLimit: two Ledgers on one file (two processes' worth of
// connections, pools and in-process locks) racing for slots and request
// keys never exceed the limit: the count and the write share a
// transaction that holds SQLite's write lock from BEGIN IMMEDIATE.
func TestTwoHandlesLimit(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ledger.db")
	ls := []*sqlite.Ledger{open(t, path), open(t, path)}
	const n = 20

	errs := ledgertest.Race(n, func(i int) error {
		return ls[i%2].Create(t.Context(), ledgertest.SlotGrant(fmt.Sprint("g-create-", i), "ent-create", grant.Activating, 1))
	})
	if ok, refused := ledgertest.Tally(t, errs, grant.ErrLimit); ok != 1 || refused != n-1 {
		t.Errorf("Creates: %d succeeded, %d refused with ErrLimit; want 1, %d", ok, refused, n-1)
	}

	for i := range n {
		if err := ls[0].Create(t.Context(), ledgertest.SlotGrant(fmt.Sprint("g-approve-", i), "ent-approve", grant.ApprovalAwaited, 0)); err != nil {
			t.Fatal(err)
		}
	}
	errs = ledgertest.Race(n, func(i int) error {
		_, err := ls[i%2].Update(t.Context(), fmt.Sprint("g-approve-", i), ledgertest.MoveTo(grant.Activating, 5))
		return err
	})
	if ok, refused := ledgertest.Tally(t, errs, grant.ErrLimit); ok != 5 || refused != n-5 {
		t.Errorf("approvals: %d succeeded, %d refused with ErrLimit; want 5, %d", ok, refused, n-5)
	}
	if got := ledgertest.Holders(t, ls[1], "ent-approve"); len(got) != 5 {
		t.Errorf("holding a slot: %v, want 5", got)
	}

	errs = ledgertest.Race(n, func(i int) error {
		g := ledgertest.SlotGrant(fmt.Sprint("g-keyed-", i), "ent-keyed", grant.ApprovalAwaited, 0)
		g.RequestKey = "envelope:bot@example.com/once"
		return ls[i%2].Create(t.Context(), g)
	})
	if ok, refused := ledgertest.Tally(t, errs, grant.ErrDuplicateRequest); ok != 1 || refused != n-1 {
		t.Errorf("Creates with one key: %d succeeded, %d refused with ErrDuplicateRequest; want 1, %d", ok, refused, n-1)
	}
}

// TestTwoProcessesLimit: the same race between two real processes (the
// test binary re-executed), each creating grants for one slot as soon as
// both are ready: exactly one grant takes it.
func TestTwoProcessesLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary; skipped in -short mode")
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ledger.db")
	open(t, path).Close() // create the schema before the race
	const perProcess = 10
	type child struct {
		cmd   *exec.Cmd
		start io.WriteCloser
		out   *bufio.Scanner
	}
	var children []child
	for p := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLimitHelperProcess$")
		cmd.Env = append(os.Environ(), limitHelperEnv+"="+path, "LEDGER_SQLITE_HELPER_PREFIX="+strconv.Itoa(p), "LEDGER_SQLITE_HELPER_N="+strconv.Itoa(perProcess))
		start, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) // may be dead already; then both fail
		c := child{cmd: cmd, start: start, out: bufio.NewScanner(stdout)}
		if !c.out.Scan() || c.out.Text() != "ready" {
			t.Fatalf("child %d: %q, want ready", p, c.out.Text())
		}
		children = append(children, c)
	}
	for _, c := range children {
		c.start.Close() // go
	}
	counts := map[string]int{}
	for p, c := range children {
		for c.out.Scan() {
			counts[c.out.Text()]++
		}
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("child %d: %v", p, err)
		}
	}
	if counts["ok"] != 1 || counts["limit"] != 2*perProcess-1 || len(counts) != 2 {
		t.Errorf("outcomes %v; want 1 ok and %d limit", counts, 2*perProcess-1)
	}
	if got := ledgertest.Holders(t, open(t, path), "prod"); len(got) != 1 {
		t.Errorf("holding a slot: %v, want one", got)
	}
}

// limitHelperEnv switches the test binary into a racer of
// TestTwoProcessesLimit.
const limitHelperEnv = "LEDGER_SQLITE_LIMIT_HELPER_PATH"

// TestLimitHelperProcess is not a test: run by TestTwoProcessesLimit as a
// child, it opens the ledger, says "ready", waits for stdin to close, then
// creates its grants at once and prints "ok" or "limit" for each.
func TestLimitHelperProcess(t *testing.T) {
	path := os.Getenv(limitHelperEnv)
	if path == "" {
		t.Skip("helper process for TestTwoProcessesLimit")
	}
	l, err := sqlite.Open(path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	n, _ := strconv.Atoi(os.Getenv("LEDGER_SQLITE_HELPER_N"))
	fmt.Println("ready")
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil { // the parent closes stdin to start the race
		fmt.Println("error", err)
		os.Exit(2)
	}
	errs := ledgertest.Race(n, func(i int) error {
		return l.Create(context.Background(), ledgertest.SlotGrant(fmt.Sprintf("g-p%s-%d", os.Getenv("LEDGER_SQLITE_HELPER_PREFIX"), i), "prod", grant.Activating, 1))
	})
	for _, err := range errs {
		switch {
		case err == nil:
			fmt.Println("ok")
		case errors.Is(err, grant.ErrLimit):
			fmt.Println("limit")
		default:
			fmt.Println("error", err)
		}
	}
	l.Close()
	os.Exit(0)
}

// TestMigrateFromV1: a file of schema version 1 is brought up to date
// (the index behind the concurrency count) and keeps its grants.
func TestMigrateFromV1(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := open(t, path)
	if err := l.Create(t.Context(), ledgertest.Full("g-old")); err != nil {
		t.Fatal(err)
	}
	l.Close()
	db, err := sql.Open("sqlite", rawDSN(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("DROP INDEX grants_by_entitlement_state; DROP TABLE notify_claims; DROP TABLE iam_queue; DROP TABLE iam_leases; PRAGMA user_version = 1"); err != nil {
		t.Fatal(err)
	}

	l = open(t, path)
	if _, err := l.Get(t.Context(), "g-old"); err != nil {
		t.Errorf("grant after the migration: %v", err)
	}
	var v, idx int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != 4 {
		t.Errorf("user_version = %d, %v; want 4", v, err)
	}
	if err := db.QueryRow("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'grants_by_entitlement_state'").Scan(&idx); err != nil || idx != 1 {
		t.Errorf("index after the migration: %d, %v", idx, err)
	}
	if first, err := l.Claim(t.Context(), "g-old/g-old-1/a@example.com", time.Minute); err != nil || !first {
		t.Errorf("Claim after the migration = %v, %v; want true", first, err)
	}
	if err := l.IAMQueue().Put(t.Context(), "projects/p", "e1", []byte("[]")); err != nil {
		t.Errorf("IAM queue Put after the migration: %v", err)
	}
}

// helperEnv switches the test binary into the writer of TestKill9.
const helperEnv = "LEDGER_SQLITE_HELPER_PATH"

// TestHelperProcess is not a test: run by TestKill9 as a child, it writes
// to the ledger at $LEDGER_SQLITE_HELPER_PATH as fast as it can and prints
// "committed ID VERSION" after each write returns, until it is killed.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process for TestKill9")
	}
	l, err := sqlite.Open(path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		id := fmt.Sprintf("g-kill-%d", i%5)
		var v int64
		if i < 5 {
			// A second round finds the grants of the first.
			if err = l.Create(t.Context(), ledgertest.Full(id)); errors.Is(err, grant.ErrExists) {
				continue
			}
			v = 1
		} else {
			var g *grant.Grant
			g, err = l.Update(t.Context(), id, func(g *grant.Grant) error {
				g.Record("jit.test", ledgertest.Start, "", strconv.Itoa(i))
				return nil
			})
			if g != nil {
				v = g.Version
			}
		}
		if err != nil {
			fmt.Fprintln(out, "error", err)
			out.Flush()
			os.Exit(2)
		}
		fmt.Fprintln(out, "committed", id, v)
		out.Flush()
	}
}

// TestKill9: a process killed with SIGKILL in the middle of a stream of
// writes loses none that had returned, and leaves a file that opens, passes
// SQLite's integrity check and accepts writes (docs/architecture.md §7: state survives a
// kill -9).
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 test re-executes the test binary; skipped in -short mode")
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ledger.db")
	for round := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), helperEnv+"="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		committed := map[string]int64{}
		sc := bufio.NewScanner(stdout)
		lines := 0
		for lines < 60 && sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "committed" {
				_ = cmd.Process.Kill() // failing anyway: the helper's state no longer matters
				_ = cmd.Wait()
				t.Fatalf("round %d: helper said %q", round, sc.Text())
			}
			v, _ := strconv.ParseInt(f[2], 10, 64)
			committed[f[1]] = v
			lines++
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		// Lines written before the kill are still in the pipe: they too
		// were committed.
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "committed" {
				v, _ := strconv.ParseInt(f[2], 10, 64)
				committed[f[1]] = v
			}
		}
		_ = cmd.Wait() // "signal: killed" is the expected outcome
		if lines < 60 {
			t.Fatalf("round %d: helper stopped after %d writes", round, lines)
		}

		l := open(t, path)
		db, err := sql.Open("sqlite", rawDSN(path))
		if err != nil {
			t.Fatal(err)
		}
		var check string
		if err := db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
			t.Errorf("round %d: integrity_check = %q, %v", round, check, err)
		}
		db.Close()
		for id, v := range committed {
			g, err := l.Get(t.Context(), id)
			if err != nil {
				t.Errorf("round %d: %s was committed (version %d) but: %v", round, id, v, err)
				continue
			}
			// The child may have committed one more write whose line
			// never made it out; never fewer.
			if g.Version < v || g.Version > v+1 {
				t.Errorf("round %d: %s at version %d, child reported %d", round, id, g.Version, v)
			}
			if len(g.Timeline) != int(g.Version)+1 { // Full has 2 entries; each update adds 1
				t.Errorf("round %d: %s has %d entries at version %d", round, id, len(g.Timeline), g.Version)
			}
		}
		if _, err := l.Update(t.Context(), "g-kill-0", func(g *grant.Grant) error { g.Record("jit.test", ledgertest.Start, "", "after kill"); return nil }); err != nil {
			t.Errorf("round %d: Update after kill: %v", round, err)
		}
		l.Close()
	}
}

// BenchmarkUpdate measures one Update of a grant with a realistic
// timeline, serial and with 8 goroutines per core.
func BenchmarkUpdate(b *testing.B) {
	for _, parallel := range []bool{false, true} {
		b.Run(fmt.Sprintf("parallel=%v", parallel), func(b *testing.B) {
			l, err := sqlite.Open(filepath.Join(b.TempDir(), "ledger.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			for i := range 16 {
				if err := l.Create(b.Context(), ledgertest.Full(fmt.Sprint("g-bench-", i))); err != nil {
					b.Fatal(err)
				}
			}
			fn := func(g *grant.Grant) error { g.Justification += "."; return nil }
			if !parallel {
				for i := 0; b.Loop(); i++ {
					if _, err := l.Update(b.Context(), fmt.Sprint("g-bench-", i%16), fn); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.SetParallelism(8)
			var n int64
			var mu sync.Mutex
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					mu.Lock()
					n++
					id := fmt.Sprint("g-bench-", n%16)
					mu.Unlock()
					if _, err := l.Update(b.Context(), id, fn); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
