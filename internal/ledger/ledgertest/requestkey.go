package ledgertest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/ledger"
)

const requestKey = "envelope:incident-bot@tools.iam.gserviceaccount.com/req-0001"

// keyed is a pending grant created by the request with key.
func keyed(id, key string) *grant.Grant {
	g := SlotGrant(id, "prod", grant.ApprovalAwaited, 0)
	g.RequestKey = key
	return g
}

// testRequestKeyTwice: a second Create with the same RequestKey fails with
// ErrDuplicateRequest and stores nothing (grant/ledger.go: "A RequestKey
// is recorded as an idempotency key in the same transaction
// (ErrDuplicateRequest if it is there already, and nothing is
// written)").
func testRequestKeyTwice(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	mustCreate(t, l, keyed("g-first", requestKey))
	err := l.Create(t.Context(), keyed("g-second", requestKey))
	if !errors.Is(err, grant.ErrDuplicateRequest) {
		t.Fatalf("second Create with the key: %v, want ErrDuplicateRequest", err)
	}
	if _, err := l.Get(t.Context(), "g-second"); !errors.Is(err, grant.ErrNotFound) {
		t.Errorf("the duplicate was stored: Get: %v", err)
	}
	if got := mustGet(t, l, "g-first"); got.RequestKey != requestKey || got.Version != 1 {
		t.Errorf("first grant: key %q version %d", got.RequestKey, got.Version)
	}
}

// testRequestKeyAfterOnce: a key recorded by Once refuses a Create with
// it: one key space (a request the policy refused had its key burnt).
func testRequestKeyAfterOnce(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	if first, err := l.Once(t.Context(), requestKey, time.Hour); err != nil || !first {
		t.Fatalf("Once = %v, %v", first, err)
	}
	if err := l.Create(t.Context(), keyed("g-after-once", requestKey)); !errors.Is(err, grant.ErrDuplicateRequest) {
		t.Errorf("Create after Once(key): %v, want ErrDuplicateRequest", err)
	}
	if _, err := l.Get(t.Context(), "g-after-once"); !errors.Is(err, grant.ErrNotFound) {
		t.Errorf("the refused grant was stored: Get: %v", err)
	}
}

// testRequestKeyThenOnce: Create records the key for Once too.
func testRequestKeyThenOnce(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	mustCreate(t, l, keyed("g-keyed", requestKey))
	if first, err := l.Once(t.Context(), requestKey, time.Hour); err != nil || first {
		t.Errorf("Once(key) after Create = %v, %v; want false", first, err)
	}
	// A grant without a key records none: the empty key is no key.
	mustCreate(t, l, keyed("g-unkeyed-1", ""))
	mustCreate(t, l, keyed("g-unkeyed-2", ""))
}

// testRequestKeyConcurrent: of 20 simultaneous Creates with one key (a
// message delivered 20 times at once) exactly one stores its grant.
func testRequestKeyConcurrent(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	const n = 20
	errs := Race(n, func(i int) error {
		return l.Create(t.Context(), keyed(fmt.Sprintf("g-dup-%02d", i), requestKey))
	})
	if ok, refused := Tally(t, errs, grant.ErrDuplicateRequest); ok != 1 || refused != n-1 {
		t.Errorf("%d Creates succeeded and %d were refused with ErrDuplicateRequest; want 1 and %d", ok, refused, n-1)
	}
	if all, err := l.List(t.Context(), grant.Query{}); err != nil || len(all) != 1 {
		t.Errorf("stored grants: %v, %v; want one", ids(all), err)
	}
}

// testRequestKeyFailedCreate: a Create that fails for another reason does
// not consume its key, so the request can still succeed.
func testRequestKeyFailedCreate(t *testing.T, open Open) {
	l, _ := ledgerAt(t, open)
	mustCreate(t, l, keyed("g-taken", "k-first"))
	mustCreate(t, l, SlotGrant("g-holder", "prod", grant.Active, 1))
	full := SlotGrant("g-full", "prod", grant.Activating, 1)
	full.RequestKey = "k-limit"
	tests := []struct {
		name string
		g    *grant.Grant
		want error
	}{
		{"taken ID", keyed("g-taken", "k-exists"), grant.ErrExists},
		{"invalid ID", keyed("a/b", "k-invalid"), ledger.ErrInvalidID},
		{"limit", full, grant.ErrLimit},
	}
	for _, tt := range tests {
		if err := l.Create(t.Context(), tt.g); !errors.Is(err, tt.want) {
			t.Errorf("%s: Create: %v, want %v", tt.name, err, tt.want)
		}
		if first, err := l.Once(t.Context(), tt.g.RequestKey, time.Hour); err != nil || !first {
			t.Errorf("%s: Once(%q) after the failed Create = %v, %v; want true", tt.name, tt.g.RequestKey, first, err)
		}
	}
}

// testRequestKeyTTL: Create keeps a key for ledger.RequestKeyTTL (at least
// a week) on the ledger's clock, then it expires like a Once key.
func testRequestKeyTTL(t *testing.T, open Open) {
	if ledger.RequestKeyTTL < 7*24*time.Hour {
		t.Errorf("RequestKeyTTL = %v, want at least 7 days", ledger.RequestKeyTTL)
	}
	l, clk := ledgerAt(t, open)
	mustCreate(t, l, keyed("g-ttl-1", requestKey))
	clk.Advance(ledger.RequestKeyTTL - time.Nanosecond)
	if err := l.Create(t.Context(), keyed("g-ttl-2", requestKey)); !errors.Is(err, grant.ErrDuplicateRequest) {
		t.Errorf("Create just before the key expires: %v, want ErrDuplicateRequest", err)
	}
	clk.Advance(time.Nanosecond)
	if err := l.Create(t.Context(), keyed("g-ttl-3", requestKey)); err != nil {
		t.Errorf("Create once the key expired: %v", err)
	}
	if first, err := l.Once(t.Context(), requestKey, time.Hour); err != nil || first {
		t.Errorf("Once after the second Create = %v, %v; want false (recorded afresh)", first, err)
	}
}
