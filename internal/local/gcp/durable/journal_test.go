package durable

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// contents is the journal's live map, as strings for readable diffs.
func contents(t *testing.T, j *Journal) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := j.Range("", func(k string, v []byte) error { out[k] = string(v); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func open(t *testing.T, path string) *Journal {
	t.Helper()
	j, err := OpenJournal(path)
	if err != nil {
		t.Fatalf("OpenJournal: %v", err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func batch(ops ...string) *Batch {
	var b Batch
	for _, op := range ops {
		if k, v, ok := strings.Cut(op, "="); ok {
			b.Put(k, []byte(v))
		} else {
			b.Delete(op)
		}
	}
	return &b
}

func TestJournalApplyAndReopen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		batches [][]string // "k=v" puts, "k" deletes
		want    map[string]string
	}{
		{name: "empty", want: map[string]string{}},
		{name: "puts", batches: [][]string{{"a=1"}, {"b=2", "c=3"}}, want: map[string]string{"a": "1", "b": "2", "c": "3"}},
		{name: "overwrite", batches: [][]string{{"a=1"}, {"a=2"}}, want: map[string]string{"a": "2"}},
		{name: "delete", batches: [][]string{{"a=1", "b=2"}, {"a"}}, want: map[string]string{"b": "2"}},
		{name: "delete_missing", batches: [][]string{{"zzz"}, {"a=1"}}, want: map[string]string{"a": "1"}},
		{name: "empty_value_and_binary_key", batches: [][]string{{"a=", "k\x00\xff=v"}}, want: map[string]string{"a": "", "k\x00\xff": "v"}},
		{name: "put_then_delete_in_one_batch", batches: [][]string{{"a=1", "a"}}, want: map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "j")
			j := open(t, path)
			for _, b := range tc.batches {
				if err := j.Apply(batch(b...)); err != nil {
					t.Fatalf("Apply: %v", err)
				}
			}
			if diff := cmp.Diff(tc.want, contents(t, j)); diff != "" {
				t.Errorf("before reopen (-want, +got):\n%s", diff)
			}
			j.Close()
			if diff := cmp.Diff(tc.want, contents(t, open(t, path))); diff != "" {
				t.Errorf("after reopen (-want, +got):\n%s", diff)
			}
			read, err := ReadJournal(path)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for k, v := range read {
				got[k] = string(v)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ReadJournal (-want, +got):\n%s", diff)
			}
		})
	}
}

// A crash while the last record was written leaves any prefix of it, or
// junk after it: every such file reloads as the state before that record,
// and the next Apply lands after a clean end.
func TestJournalTornTail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "j")
	j := open(t, path)
	if err := j.Apply(batch("a=1", "b=2")); err != nil {
		t.Fatal(err)
	}
	before := j.Stats().Size
	if err := j.Apply(batch("a=changed", "b", "c=3")); err != nil {
		t.Fatal(err)
	}
	j.Close()
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "1", "b": "2"}

	type variant struct {
		name string
		data []byte
	}
	var variants []variant
	for n := before; n < int64(len(whole)); n++ {
		variants = append(variants, variant{fmt.Sprintf("cut_at_%d", n), whole[:n]})
	}
	flipped := bytes.Clone(whole)
	flipped[len(flipped)-1] ^= 0x01
	variants = append(variants,
		variant{"last_byte_flipped", flipped},
		variant{"zeros_after_valid", append(bytes.Clone(whole[:before]), make([]byte, 64)...)},
		variant{"huge_length", append(bytes.Clone(whole[:before]), 0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4)},
	)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "j")
			if err := os.WriteFile(p, v.data, 0o600); err != nil {
				t.Fatal(err)
			}
			j := open(t, p)
			if diff := cmp.Diff(want, contents(t, j)); diff != "" {
				t.Fatalf("after reopen (-want, +got):\n%s", diff)
			}
			if got := j.Stats().TruncatedBytes; got != int64(len(v.data))-before {
				t.Errorf("TruncatedBytes = %d, want %d", got, int64(len(v.data))-before)
			}
			if err := j.Apply(batch("d=4")); err != nil {
				t.Fatal(err)
			}
			j.Close()
			want := map[string]string{"a": "1", "b": "2", "d": "4"}
			if diff := cmp.Diff(want, contents(t, open(t, p))); diff != "" {
				t.Errorf("after an append and a second reopen (-want, +got):\n%s", diff)
			}
		})
	}
}

// A file torn while its header was created is a new journal; a file that
// is not a journal is refused rather than overwritten.
func TestJournalHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		data    string
		wantErr bool
	}{
		{name: "empty_file", data: ""},
		{name: "torn_header", data: journalMagic[:3]},
		{name: "not_a_journal", data: `{"tasks":[]}`, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "j")
			if err := os.WriteFile(p, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			j, err := OpenJournal(p)
			if (err != nil) != tc.wantErr {
				t.Fatalf("OpenJournal: err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil {
				j.Close()
			}
		})
	}
}

// One journal file has one writer at a time: a second open while the first
// is open is refused (interleaved appends would tear each other), and
// succeeds once it is closed, or once it is compacted and closed.
func TestJournalOneWriter(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "j")
	j := open(t, path)
	if _, err := OpenJournal(path); err == nil {
		t.Fatal("second OpenJournal of an open journal: no error")
	}
	if err := j.Put("a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := j.Compact(); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenJournal(path); err == nil {
		t.Fatal("second OpenJournal after a compaction: no error")
	}
	j.Close()
	if diff := cmp.Diff(map[string]string{"a": "1"}, contents(t, open(t, path))); diff != "" {
		t.Errorf("after reopen (-want, +got):\n%s", diff)
	}
}

// Compaction drops overwritten values, keeps the live ones, and keeps the
// bytes it writes to a fraction of those appended.
func TestJournalCompaction(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "j")
	j := open(t, path)
	j.minCompactBytes = 4 << 10
	value := bytes.Repeat([]byte("v"), 100)
	want := map[string]string{}
	for i := range 2000 {
		k := "key-" + strconv.Itoa(i%50)
		v := append(bytes.Clone(value), strconv.Itoa(i)...)
		if err := j.Put(k, v); err != nil {
			t.Fatal(err)
		}
		want[k] = string(v)
	}
	st := j.Stats()
	if st.Compactions == 0 {
		t.Fatalf("no compaction after %d appended bytes", st.AppendedBytes)
	}
	if st.Size > j.compactRatio*st.LiveBytes+int64(frameHeader+len(value)+32) {
		t.Errorf("size %d is over %d times the live %d", st.Size, j.compactRatio, st.LiveBytes)
	}
	if diff := cmp.Diff(want, contents(t, j)); diff != "" {
		t.Errorf("after compactions (-want, +got):\n%s", diff)
	}
	j.Close()
	if diff := cmp.Diff(want, contents(t, open(t, path))); diff != "" {
		t.Errorf("after reopen (-want, +got):\n%s", diff)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".j.tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// The bytes one change appends do not depend on how much the journal holds.
func TestJournalBytesPerChangeFlat(t *testing.T) {
	t.Parallel()
	perChange := func(existing int) int64 {
		j := open(t, filepath.Join(t.TempDir(), "j"))
		for i := range existing {
			if err := j.Put(fmt.Sprintf("task-%06d", i), bytes.Repeat([]byte("x"), 500)); err != nil {
				t.Fatal(err)
			}
		}
		before := j.Stats()
		if err := j.Put("task-new", bytes.Repeat([]byte("x"), 500)); err != nil {
			t.Fatal(err)
		}
		after := j.Stats()
		if n := after.Syncs - before.Syncs; n != 1 {
			t.Errorf("one change took %d fsyncs, want 1", n)
		}
		return after.AppendedBytes - before.AppendedBytes
	}
	small, large := perChange(10), perChange(1000)
	if small != large {
		t.Errorf("one change appended %d bytes with 10 entries and %d with 1,000; want the same", small, large)
	}
}

// Concurrent Applies share fsyncs and lose nothing.
func TestJournalGroupCommit(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "j")
	j := open(t, path)
	const writers, each = 8, 25
	want := map[string]string{}
	var wg sync.WaitGroup
	for w := range writers {
		for i := range each {
			want[fmt.Sprintf("w%d-%d", w, i)] = strconv.Itoa(i)
		}
		wg.Go(func() {
			for i := range each {
				if err := j.Put(fmt.Sprintf("w%d-%d", w, i), []byte(strconv.Itoa(i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := j.Stats()
	if st.Appends != writers*each || st.Syncs > st.Appends {
		t.Errorf("Appends = %d, Syncs = %d; want %d appends and no more syncs", st.Appends, st.Syncs, writers*each)
	}
	t.Logf("%d appends took %d fsyncs", st.Appends, st.Syncs)
	j.Close()
	if diff := cmp.Diff(want, contents(t, open(t, path))); diff != "" {
		t.Errorf("after reopen (-want, +got):\n%s", diff)
	}
}

const killHelperEnv = "DURABLE_JOURNAL_HELPER"

// TestJournalHelperProcess is the child of TestJournalKill: it applies
// batches that keep keys a and b equal, forever, until killed.
func TestJournalHelperProcess(t *testing.T) {
	path := os.Getenv(killHelperEnv)
	if path == "" {
		t.Skip("helper process for TestJournalKill")
	}
	j, err := OpenJournal(path)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	j.minCompactBytes = 8 << 10 // compactions happen too, and may be killed
	pad := bytes.Repeat([]byte("p"), 300)
	for i := 1; ; i++ {
		v := []byte(strconv.Itoa(i))
		var b Batch
		b.Put("a", v)
		b.Put("pad", pad)
		b.Put("b", v)
		if err := j.Apply(&b); err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
		if i == 50 {
			fmt.Println("READY")
		}
	}
}

// A kill -9 at a random moment, mid-append or mid-compaction, leaves a
// journal that reloads with every batch whole.
func TestJournalKill(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary; skipped in -short mode")
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "j")
	for round := range 3 {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestJournalHelperProcess$")
		cmd.Env = append(os.Environ(), killHelperEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		for sc.Scan() && sc.Text() != "READY" {
			if strings.HasPrefix(sc.Text(), "ERROR") {
				t.Fatalf("child: %s", sc.Text())
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()

		got, err := ReadJournal(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(got["a"]) == "" || string(got["a"]) != string(got["b"]) {
			t.Fatalf("round %d: a=%q b=%q after kill -9; want equal and set", round, got["a"], got["b"])
		}
		j := open(t, path)
		if diff := cmp.Diff(string(got["a"]), contents(t, j)["b"]); diff != "" {
			t.Errorf("round %d: OpenJournal disagrees with ReadJournal (-want, +got):\n%s", round, diff)
		}
		j.Close()
	}
}

// A deferred batch costs no sync of its own: it is written, before the
// batch that follows it, by the next Apply, by Sync, by Close, or within
// DeferWindow when nothing else comes; reopened, the file has them all in
// order.
func TestJournalDefer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		flush func(*testing.T, *Journal)
	}{
		{"next apply", func(t *testing.T, j *Journal) {
			if err := j.Apply(batch("c=3")); err != nil {
				t.Fatal(err)
			}
		}},
		{"sync", func(t *testing.T, j *Journal) {
			if err := j.Sync(); err != nil {
				t.Fatal(err)
			}
		}},
		{"close", func(t *testing.T, j *Journal) {
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{"window", func(t *testing.T, j *Journal) {
			for deadline := time.Now().Add(10 * time.Second); j.Stats().Syncs == 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("deferred batches never synced")
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "j")
			j := open(t, path)
			for _, b := range []*Batch{batch("a=1"), batch("b=2", "a=0")} {
				if err := j.Defer(b); err != nil {
					t.Fatal(err)
				}
			}
			if s := j.Stats(); s.Syncs != 0 {
				t.Fatalf("Defer synced %d times", s.Syncs)
			}
			tc.flush(t, j)
			if s := j.Stats(); s.Syncs != 1 {
				t.Errorf("%d syncs for the deferred batches and what followed, want 1", s.Syncs)
			}
			j.Close()
			got := contents(t, open(t, path))
			want := map[string]string{"a": "0", "b": "2"}
			if tc.name == "next apply" {
				want["c"] = "3"
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("reopened (-want +got):\n%s", diff)
			}
		})
	}
}
