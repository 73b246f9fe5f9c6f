package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/ledger/ledgertest"
)

// holdWriter takes the writer token, as a batch in progress does, and
// returns once n writes wait behind it.
func holdWriter(t *testing.T, l *Ledger, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		l.pendingMu.Lock()
		waiting := len(l.pending)
		l.pendingMu.Unlock()
		if waiting >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes wait, want %d", waiting, n)
		}
	}
}

// Writes that wait while another is committing are committed together by
// one transaction; the one that fails (a taken ID) fails alone, and the
// others are durable: a new handle on the file reads them.
func TestGroupCommitCombinesWaitingWrites(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Create(t.Context(), ledgertest.Full("g-taken")); err != nil {
		t.Fatal(err)
	}
	before := l.commits.Load()
	l.writer <- struct{}{} // a batch in progress
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		id := fmt.Sprintf("g-group-%02d", i)
		if i == 7 {
			id = "g-taken"
		}
		wg.Go(func() { errs[i] = l.Create(t.Context(), ledgertest.Full(id)) })
	}
	holdWriter(t, l, n)
	<-l.writer
	wg.Wait()
	for i, err := range errs {
		if want := i == 7; errors.Is(err, grant.ErrExists) != want || (!want && err != nil) {
			t.Errorf("Create %d: %v", i, err)
		}
	}
	if got := l.commits.Load() - before; got != 1 {
		t.Errorf("%d commits for %d waiting writes, want 1", got, n)
	}
	again, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	gs, err := again.List(t.Context(), grant.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(n, len(gs)); diff != "" {
		t.Errorf("grants on disk (-want +got):\n%s", diff)
	}
}

// A caller that gives up while its write waits leaves without it: the
// write is never made. Updates in one batch see each other's changes.
func TestGroupCommitCallerLeavesBeforeItsBatch(t *testing.T) {
	t.Parallel()
	l, err := Open(filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Create(t.Context(), ledgertest.Full("g-count")); err != nil {
		t.Fatal(err)
	}
	l.writer <- struct{}{}
	ctx, cancel := context.WithCancel(t.Context())
	left := make(chan error, 1)
	go func() { left <- l.Create(ctx, ledgertest.Full("g-abandoned")) }()
	const n = 5
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := l.Update(t.Context(), "g-count", func(g *grant.Grant) error {
				g.Justification += "+"
				return nil
			}); err != nil {
				t.Error(err)
			}
		})
	}
	holdWriter(t, l, n+1)
	cancel()
	if err := <-left; !errors.Is(err, context.Canceled) {
		t.Errorf("abandoned Create: %v, want context.Canceled", err)
	}
	<-l.writer
	wg.Wait()
	if _, err := l.Get(t.Context(), "g-abandoned"); !errors.Is(err, grant.ErrNotFound) {
		t.Errorf("abandoned grant: %v, want ErrNotFound", err)
	}
	g, err := l.Get(t.Context(), "g-count")
	if err != nil {
		t.Fatal(err)
	}
	if want := ledgertest.Full("g-count").Justification + "+++++"; g.Justification != want {
		t.Errorf("justification %q, want %q: updates of one batch lost each other", g.Justification, want)
	}
}
