package ledgertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/ledger"
)

// Journal is notify.Journal, the notifier's record of the mails it has
// sent, spelled out here so that the ledgers' tests need not import the
// notifier (adapters do not know the domain above the grant). The rules
// tested are its doc comments.
type Journal interface {
	Claim(ctx context.Context, key string, lease time.Duration) (bool, error)
	Done(ctx context.Context, key string) error
	Release(ctx context.Context, key string) error
}

// OpenJournal returns a new, empty journal whose leases run on clk; it
// registers any Close with t.Cleanup.
type OpenJournal func(t *testing.T, clk clock.Clock) Journal

// RunJournal runs the contract suite of Journal, every test in
// parallel on a journal of its own.
func RunJournal(t *testing.T, open OpenJournal) {
	tests := []struct {
		name string
		fn   func(*testing.T, Journal, *clock.Manual)
	}{
		{"ClaimOnce", testClaimOnce},
		{"ClaimLease", testClaimLease},
		{"ClaimDone", testClaimDone},
		{"ClaimRelease", testClaimRelease},
		{"ClaimInvalid", testClaimInvalid},
		{"ClaimConcurrent", testClaimConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := clock.NewManual(Start)
			tt.fn(t, open(t, clk), clk)
		})
	}
}

// claimStep is one call of a scripted journal test.
type claimStep struct {
	advance time.Duration
	op      string // "claim", "done" or "release"
	key     string
	want    string // of a claim: "claimed", "busy" (ErrClaimBusy) or "done"
}

func runClaimSteps(t *testing.T, j Journal, clk *clock.Manual, steps []claimStep) {
	t.Helper()
	for i, s := range steps {
		clk.Advance(s.advance)
		switch s.op {
		case "claim":
			got, err := j.Claim(t.Context(), s.key, time.Minute)
			outcome := "done"
			switch {
			case errors.Is(err, ledger.ErrClaimBusy) && !got:
				outcome = "busy"
			case err != nil:
				t.Fatalf("step %d: Claim(%q): %v", i, s.key, err)
			case got:
				outcome = "claimed"
			}
			if outcome != s.want {
				t.Errorf("step %d (at +%v): Claim(%q) is %s, want %s", i, clk.Now().Sub(Start), s.key, outcome, s.want)
			}
		case "done":
			if err := j.Done(t.Context(), s.key); err != nil {
				t.Fatalf("step %d: Done(%q): %v", i, s.key, err)
			}
		case "release":
			if err := j.Release(t.Context(), s.key); err != nil {
				t.Fatalf("step %d: Release(%q): %v", i, s.key, err)
			}
		}
	}
}

const claimKey = "g-aaaaaaaaaaaaaaaaaaaa/g-aaaaaaaaaaaaaaaaaaaa-1/carol@example.com"

// testClaimOnce: the first claim gets the key, a second under its lease
// does not; keys are independent, whatever characters they hold.
func testClaimOnce(t *testing.T, j Journal, clk *clock.Manual) {
	runClaimSteps(t, j, clk, []claimStep{
		{0, "claim", claimKey, "claimed"},
		{0, "claim", claimKey, "busy"},
		{0, "claim", "g-other/e/carol@example.com", "claimed"},
		{0, "claim", "a key with spaces, slashes // and ünïcödé", "claimed"},
		{0, "claim", "a key with spaces, slashes // and ünïcödé", "busy"},
		{0, "claim", "__reserved__", "claimed"},
		{0, "claim", "..", "claimed"},
	})
}

// testClaimLease: a claim never marked done lapses exactly when its lease
// ends, and is then claimed afresh (for a new lease).
func testClaimLease(t *testing.T, j Journal, clk *clock.Manual) {
	runClaimSteps(t, j, clk, []claimStep{
		{0, "claim", claimKey, "claimed"},
		{time.Minute - 1, "claim", claimKey, "busy"},
		{1, "claim", claimKey, "claimed"}, // lease over: a new claim, until +2m
		{time.Minute - 1, "claim", claimKey, "busy"},
		{1, "claim", claimKey, "claimed"},
	})
}

// testClaimDone: Done makes a claim permanent, leases or releases
// notwithstanding; Done without a claim works too.
func testClaimDone(t *testing.T, j Journal, clk *clock.Manual) {
	runClaimSteps(t, j, clk, []claimStep{
		{0, "claim", claimKey, "claimed"},
		{0, "done", claimKey, ""},
		{0, "claim", claimKey, "done"},
		{time.Hour, "claim", claimKey, "done"},
		{0, "release", claimKey, ""},
		{0, "claim", claimKey, "done"},
		{0, "done", "unclaimed", ""},
		{0, "claim", "unclaimed", "done"},
	})
}

// testClaimRelease: a released claim is claimed again at once; releasing
// a key nobody claimed is harmless.
func testClaimRelease(t *testing.T, j Journal, clk *clock.Manual) {
	runClaimSteps(t, j, clk, []claimStep{
		{0, "release", claimKey, ""},
		{0, "claim", claimKey, "claimed"},
		{0, "release", claimKey, ""},
		{0, "claim", claimKey, "claimed"},
		{0, "claim", claimKey, "busy"},
	})
}

func testClaimInvalid(t *testing.T, j Journal, clk *clock.Manual) {
	for _, lease := range []time.Duration{0, -time.Second} {
		if _, err := j.Claim(t.Context(), claimKey, lease); err == nil {
			t.Errorf("Claim with lease %v succeeded", lease)
		}
	}
	if _, err := j.Claim(t.Context(), "", time.Minute); err == nil {
		t.Error("Claim with an empty key succeeded")
	}
	if err := j.Done(t.Context(), ""); err == nil {
		t.Error("Done with an empty key succeeded")
	}
	// The refused calls claimed nothing.
	if got, err := j.Claim(t.Context(), claimKey, time.Minute); err != nil || !got {
		t.Errorf("Claim after refused calls = %v, %v; want true", got, err)
	}
}

// testClaimConcurrent: of 20 simultaneous claims of one key exactly one
// gets it, for a new key and for one whose lease has expired.
func testClaimConcurrent(t *testing.T, j Journal, clk *clock.Manual) {
	race := func(round string) {
		const n = 20
		count := Winners(t, round, n, func(int) (bool, error) {
			ok, err := j.Claim(t.Context(), claimKey, time.Minute)
			if errors.Is(err, ledger.ErrClaimBusy) {
				err = nil // a loser's answer
			}
			return ok, err
		})
		if count != 1 {
			t.Errorf("%s: %d of %d concurrent claims got the key, want 1", round, count, n)
		}
	}
	race("new key")
	clk.Advance(time.Minute)
	race("expired lease")
}
