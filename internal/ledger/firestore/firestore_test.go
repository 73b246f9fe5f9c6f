package firestore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	gfs "cloud.google.com/go/firestore"
	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/iamqueue"
	"github.com/jitpipeline/jit/internal/ledger"
	"github.com/jitpipeline/jit/internal/ledger/firestore"
	"github.com/jitpipeline/jit/internal/ledger/ledgertest"
	"github.com/jitpipeline/jit/internal/local/gcp/loopback"
)

const project = "jit-ledger-test"

// open returns a Ledger on the emulator; cfg.ProjectID defaults to
// project and cfg.Prefix to a fresh prefix.
func open(t *testing.T, cfg firestore.Config) *firestore.Ledger {
	t.Helper()
	addr := emulatorAddr(t)
	if cfg.ProjectID == "" {
		cfg.ProjectID = project
	}
	if cfg.Prefix == "" {
		cfg.Prefix = newPrefix()
	}
	// Not t.Context(): the client must outlive the test body until Cleanup.
	l, err := firestore.Open(context.Background(), cfg, loopback.ClientOptions(addr)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// rawClient reads what the ledger wrote, bypassing it.
func rawClient(t *testing.T) *gfs.Client {
	t.Helper()
	c, err := gfs.NewClient(context.Background(), project, loopback.ClientOptions(emulatorAddr(t))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestContract(t *testing.T) {
	t.Parallel()
	ledgertest.Run(t, func(t *testing.T, clk clock.Clock) grant.Ledger {
		return open(t, firestore.Config{Clock: clk})
	})
}

func TestJournalContract(t *testing.T) {
	t.Parallel()
	ledgertest.RunJournal(t, func(t *testing.T, clk clock.Clock) ledgertest.Journal {
		return open(t, firestore.Config{Clock: clk})
	})
}

func TestIAMQueueContract(t *testing.T) {
	t.Parallel()
	ledgertest.RunQueue(t, func(t *testing.T, clk clock.Clock) iamqueue.Queue {
		return open(t, firestore.Config{Clock: clk}).IAMQueue()
	})
}

// TestTwoClients: two Ledgers with clients of their own (two function
// instances) updating one grant at once lose nothing: Firestore aborts the
// transaction that loses a race and the client re-runs it, re-reading the
// grant ("a concurrent write makes it re-read and re-apply fn",
// grant/ledger.go; RunTransaction retries on Aborted).
func TestTwoClients(t *testing.T) {
	t.Parallel()
	prefix := newPrefix()
	a := open(t, firestore.Config{Prefix: prefix})
	b := open(t, firestore.Config{Prefix: prefix})
	if err := a.Create(t.Context(), &grant.Grant{ID: "g-shared"}); err != nil {
		t.Fatal(err)
	}
	const perLedger = 4
	var wg sync.WaitGroup
	for _, l := range []*firestore.Ledger{a, b} {
		for range perLedger {
			wg.Go(func() {
				if _, err := l.Update(t.Context(), "g-shared", func(g *grant.Grant) error {
					g.Record("jit.test", ledgertest.Start, "", "")
					return nil
				}); err != nil {
					t.Errorf("Update: %v", err)
				}
			})
		}
	}
	wg.Wait()
	g, err := b.Get(t.Context(), "g-shared")
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Timeline) != 2*perLedger || g.Version != 2*perLedger+1 {
		t.Errorf("%d entries, version %d; want %d, %d", len(g.Timeline), g.Version, 2*perLedger, 2*perLedger+1)
	}
}

// TestDocumentShape pins the stored fields that production configuration
// depends on: the composite indexes (README.md) name requester,
// entitlement, state, approvers (an array), hasUnpublished, createTime and
// endTime (absent while unset); the TTL policy names expireAt on onceKeys,
// which must be a timestamp. It also pins the grant fields added for
// request keys and limits, the slot list and the request key document.
// [Firestore TTL policies: "the field must contain a Date and time value";
// https://cloud.google.com/firestore/docs/ttl]
func TestDocumentShape(t *testing.T) {
	t.Parallel()
	prefix := newPrefix()
	clk := clock.NewManual(ledgertest.Start)
	l := open(t, firestore.Config{Prefix: prefix, Clock: clk})
	raw := rawClient(t)

	g := ledgertest.Full("g-shape")
	if err := l.Create(t.Context(), g); err != nil {
		t.Fatal(err)
	}
	noEnd := &grant.Grant{ID: "g-open", CreateTime: ledgertest.Start}
	if err := l.Create(t.Context(), noEnd); err != nil {
		t.Fatal(err)
	}
	snap, err := raw.Collection(prefix + firestore.GrantsCollection).Doc("g-shape").Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	d := snap.Data()
	got := map[string]any{}
	for _, f := range []string{"id", "requester", "entitlement", "state", "approvers", "hasUnpublished", "createTime", "endTime", "version", "requestedDuration", "requesterHostedDomain", "requestKey", "concurrencyLimit"} {
		got[f] = d[f]
	}
	want := map[string]any{
		"id":                    "g-shape",
		"requester":             "alice@example.com",
		"entitlement":           "prod-admin",
		"state":                 "ACTIVE",
		"approvers":             []any{"user:carol@example.com", "group:managers@example.com"},
		"hasUnpublished":        true,
		"createTime":            "2026-03-14T15:09:26.535897932Z",
		"endTime":               "2026-03-14T16:42:26.535897933Z",
		"version":               int64(1),
		"requestedDuration":     int64(90*time.Minute + 1),
		"requesterHostedDomain": "example.com",
		"requestKey":            "envelope:incident-bot@tools.iam.gserviceaccount.com/g-shape",
		"concurrencyLimit":      int64(50),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored fields (-want +got):\n%s", diff)
	}
	if in, ok := d["inputs"].(string); !ok || !strings.Contains(in, `"ticket":"INC-42"`) {
		t.Errorf("inputs = %#v, want a JSON string", d["inputs"])
	}
	snap, err = raw.Collection(prefix + firestore.GrantsCollection).Doc("g-open").Get(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := snap.Data()["endTime"]; ok {
		t.Errorf("a grant without an end has an endTime field: %#v", snap.Data()["endTime"])
	}

	// The slot list of the entitlement, under the SHA-256 of its name, and
	// the request key, with the ledger's TTL.
	sum := sha256.Sum256([]byte("prod-admin"))
	snap, err = raw.Collection(prefix + firestore.SlotsCollection).Doc(hex.EncodeToString(sum[:])).Get(t.Context())
	if err != nil {
		t.Fatalf("slots document: %v", err)
	}
	if diff := cmp.Diff(map[string]any{"entitlement": "prod-admin", "grants": []any{"g-shape"}}, snap.Data()); diff != "" {
		t.Errorf("slots document (-want +got):\n%s", diff)
	}
	sum = sha256.Sum256([]byte(g.RequestKey))
	snap, err = raw.Collection(prefix + firestore.KeysCollection).Doc(hex.EncodeToString(sum[:])).Get(t.Context())
	if err != nil {
		t.Fatalf("request key document: %v", err)
	}
	if got, want := snap.Data()["expireTime"], ledger.FormatTime(ledgertest.Start.Add(ledger.RequestKeyTTL)); got != want {
		t.Errorf("request key expireTime = %v, want %v", got, want)
	}

	if _, err := l.Once(t.Context(), "notify/g-shape", time.Hour); err != nil {
		t.Fatal(err)
	}
	sum = sha256.Sum256([]byte("notify/g-shape"))
	snap, err = raw.Collection(prefix + firestore.KeysCollection).Doc(hex.EncodeToString(sum[:])).Get(t.Context())
	if err != nil {
		t.Fatalf("key document: %v", err)
	}
	kd := snap.Data()
	// Start has 535897932 ns: expireAt is rounded up to whole microseconds.
	wantExpireAt := time.Date(2026, 3, 14, 16, 9, 26, 535898000, time.UTC)
	if at, ok := kd["expireAt"].(time.Time); !ok || !at.Equal(wantExpireAt) {
		t.Errorf("expireAt = %#v, want the timestamp %v", kd["expireAt"], wantExpireAt)
	}
	if kd["key"] != "notify/g-shape" || kd["expireTime"] != "2026-03-14T16:09:26.535897932Z" {
		t.Errorf("key document = %v", kd)
	}
}

// TestOnceAfterTTLDeletion: a key document deleted by the TTL policy
// (simulated) is recorded afresh.
func TestOnceAfterTTLDeletion(t *testing.T) {
	t.Parallel()
	prefix := newPrefix()
	l := open(t, firestore.Config{Prefix: prefix})
	raw := rawClient(t)
	if first, err := l.Once(t.Context(), "k", time.Hour); err != nil || !first {
		t.Fatalf("Once = %v, %v", first, err)
	}
	if first, err := l.Once(t.Context(), "k", time.Hour); err != nil || first {
		t.Fatalf("second Once = %v, %v", first, err)
	}
	sum := sha256.Sum256([]byte("k"))
	if _, err := raw.Collection(prefix + firestore.KeysCollection).Doc(hex.EncodeToString(sum[:])).Delete(t.Context()); err != nil {
		t.Fatal(err)
	}
	if first, err := l.Once(t.Context(), "k", time.Hour); err != nil || !first {
		t.Errorf("Once after deletion = %v, %v; want true", first, err)
	}
}

// TestConfigValidate: every problem is reported at once.
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	err := firestore.Config{Prefix: "a/b"}.Validate()
	if err == nil {
		t.Fatal("Validate accepted an empty project and a prefix with a slash")
	}
	for _, want := range []string{"ProjectID", "Prefix"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want a mention of %s", err, want)
		}
	}
	if err := (firestore.Config{ProjectID: "p", Prefix: "jit-"}).Validate(); err != nil {
		t.Errorf("Validate of a good config: %v", err)
	}
}
