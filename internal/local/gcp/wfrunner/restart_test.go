package wfrunner

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	executions "cloud.google.com/go/workflows/executions/apiv1"
	executionspb "cloud.google.com/go/workflows/executions/apiv1/executionspb"

	"github.com/jitpipeline/jit/internal/local/gcp/durable"
	"github.com/jitpipeline/jit/internal/local/gcp/loopback"
)

// Workflows the helper process runs. The announcements go to the parent's
// HTTP server; the parent counts them to prove replay does not repeat them.
var helperWorkflows = map[string]string{
	"cb": `
main:
  params: [args]
  steps:
    - create:
        call: events.create_callback_endpoint
        result: cb
    - announce:
        call: http.post
        args:
          url: ${args.hook + "/hook/cb"}
          body: {"url": "${cb.url}"}
    - wait:
        call: events.await_callback
        args:
          callback: ${cb}
          timeout: 3600
        result: req
    - done:
        return: ${req.http_request.body}
`,
	"nap": `
main:
  params: [args]
  steps:
    - before:
        assign:
          - t0: ${sys.now()}
    - announce:
        call: http.post
        args:
          url: ${args.hook + "/hook/nap"}
          body: {"t0": "${t0}"}
    - nap:
        call: sys.sleep
        args:
          seconds: 2
    - done:
        return: {"t0": "${t0}", "t1": "${sys.now()}"}
`,
}

// helperAddrs is what a helper process publishes for the parent.
type helperAddrs struct {
	GRPC      string `json:"grpc"`
	Callbacks string `json:"callbacks"`
	Execution string `json:"execution"`
}

// TestHelperProcess is the child side of the kill -9 tests: a runner on
// WFRUNNER_DIR that optionally starts a workflow, publishes its addresses to
// WFRUNNER_ADDRS and serves until it is killed.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("WFRUNNER_HELPER") != "1" {
		t.Skip("helper process for the restart tests")
	}
	if err := helperMain(); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	select {} // until SIGKILL
}

func helperMain() error {
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	r, err := New(Config{
		Project: testProject, Location: testLocation,
		Dir:             os.Getenv("WFRUNNER_DIR"),
		CallbackBaseURL: "http://" + l.Addr().String(),
		Logger:          slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		return err
	}
	for name, src := range helperWorkflows {
		if err := r.Deploy(name, []byte(src)); err != nil {
			return err
		}
	}
	if err := r.Start(ctx); err != nil {
		return err
	}
	srv := &http.Server{Handler: r.CallbackHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }() // serves until the process dies
	g, err := loopback.ServeGRPC("127.0.0.1:0", r.Register)
	if err != nil {
		return err
	}
	a := helperAddrs{GRPC: g.Addr, Callbacks: "http://" + l.Addr().String()}
	if wf := os.Getenv("WFRUNNER_RUN"); wf != "" {
		if a.Execution, err = r.Run(ctx, wf, map[string]any{"hook": os.Getenv("WFRUNNER_HOOK")}); err != nil {
			return err
		}
	}
	return durable.WriteJSON(os.Getenv("WFRUNNER_ADDRS"), a)
}

// child is a running helper process.
type child struct {
	cmd   *exec.Cmd
	addrs helperAddrs
}

func startChild(t *testing.T, dir, hook, run, addrFile string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "WFRUNNER_HELPER=1", "WFRUNNER_DIR="+dir, "WFRUNNER_HOOK="+hook,
		"WFRUNNER_RUN="+run, "WFRUNNER_ADDRS="+addrFile)
	cmd.Stderr = &testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd}
	t.Cleanup(c.kill)
	deadline := time.Now().Add(30 * time.Second)
	for {
		found, err := durable.ReadJSON(addrFile, &c.addrs)
		if err != nil {
			t.Fatal(err)
		}
		if found {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatal("helper process did not publish its addresses")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL: no shutdown code runs in the child.
func (c *child) kill() {
	if c.cmd.ProcessState == nil {
		_ = c.cmd.Process.Kill()
		_ = c.cmd.Wait()
	}
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Logf("child: %s", strings.TrimSpace(string(p)))
	return len(p), nil
}

// readRecord reads an execution's durable record as the child wrote it.
func readRecord(t *testing.T, dir, execName string) *record {
	t.Helper()
	entries, err := durable.ReadJournal(filepath.Join(dir, journalFile))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := readRecords(journalEntries(entries))
	if err != nil {
		t.Fatal(err)
	}
	if recs[execName] == nil {
		t.Fatalf("execution %s is not in the journal", execName)
	}
	return recs[execName]
}

// journalEntries gives ReadJournal's map the Range of a Journal.
type journalEntries map[string][]byte

func (m journalEntries) Range(prefix string, fn func(string, []byte) error) error {
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			if err := fn(k, v); err != nil {
				return err
			}
		}
	}
	return nil
}

func waitRecordKind(t *testing.T, dir, execName, kind string) *record {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if rec := readRecord(t, dir, execName); len(rec.Journal) > 0 && rec.Journal[len(rec.Journal)-1].Kind == kind {
			return rec
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("execution never journaled %q", kind)
	return nil
}

// hookServer collects the workflow's announcements.
func hookServer(t *testing.T) (*httptest.Server, chan []byte) {
	ch := make(chan []byte, 16)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- b
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	}))
	t.Cleanup(s.Close)
	return s, ch
}

func waitViaClient(t *testing.T, grpcAddr, name string) *executionspb.Execution {
	t.Helper()
	c, err := executions.NewClient(t.Context(), loopback.ClientOptions(grpcAddr)...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return waitDone(t, c, name)
}

// TestKillDuringAwait: a child process creates a callback endpoint,
// announces its URL and awaits; it is killed with SIGKILL; a new child on
// the same Dir resumes the execution by replay, the same callback path
// completes it, and the announcement was made once (journaled, not redone).
// Callbacks: docs/google-cloud.md §4 "Callbacks"; durability: docs/architecture.md §7.
func TestKillDuringAwait(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 restart test re-executes the test binary; skipped in -short")
	}
	t.Parallel()
	dir := t.TempDir()
	hook, announced := hookServer(t)
	c1 := startChild(t, dir, hook.URL, "cb", filepath.Join(dir, "addrs1.json"))
	var ann struct{ URL string }
	if err := json.Unmarshal(<-announced, &ann); err != nil {
		t.Fatal(err)
	}
	before := waitRecordKind(t, dir, c1.addrs.Execution, "await")
	c1.kill()

	c2 := startChild(t, dir, hook.URL, "", filepath.Join(dir, "addrs2.json"))
	path := ann.URL[strings.Index(ann.URL, "/v1/"):]
	if code := post(t, http.MethodPost, c2.addrs.Callbacks+path, `{"decision":"approve"}`); code != http.StatusOK {
		t.Fatalf("callback to the resumed execution = %d, want 200", code)
	}
	got := waitViaClient(t, c2.addrs.GRPC, c1.addrs.Execution)
	if got.GetState() != executionspb.Execution_SUCCEEDED || got.GetResult() != `{"decision":"approve"}` {
		t.Fatalf("resumed execution = %v %s %v", got.GetState(), got.GetResult(), got.GetError())
	}
	if n := len(announced); n != 0 {
		t.Errorf("announcement repeated %d times after restart", n)
	}
	after := readRecord(t, dir, c1.addrs.Execution)
	if !after.Journal[len(before.Journal)-1].Deadline.Equal(*before.Journal[len(before.Journal)-1].Deadline) {
		t.Errorf("await deadline changed across restart")
	}
}

// TestKillDuringSleep: a child is killed with SIGKILL during sys.sleep; the
// resumed execution keeps the journaled deadline (one sleep entry, same
// time), wakes no earlier than it, and replays sys.now and the announcement.
// sys.sleep: docs/google-cloud.md §4 "Sleep, limits, quotas".
func TestKillDuringSleep(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 restart test re-executes the test binary; skipped in -short")
	}
	t.Parallel()
	dir := t.TempDir()
	hook, announced := hookServer(t)
	c1 := startChild(t, dir, hook.URL, "nap", filepath.Join(dir, "addrs1.json"))
	var ann struct{ T0 float64 }
	if err := json.Unmarshal(<-announced, &ann); err != nil {
		t.Fatal(err)
	}
	before := waitRecordKind(t, dir, c1.addrs.Execution, "sleep")
	deadline := *before.Journal[len(before.Journal)-1].Deadline
	c1.kill()

	c2 := startChild(t, dir, hook.URL, "", filepath.Join(dir, "addrs2.json"))
	got := waitViaClient(t, c2.addrs.GRPC, c1.addrs.Execution)
	if got.GetState() != executionspb.Execution_SUCCEEDED {
		t.Fatalf("resumed execution = %v %v", got.GetState(), got.GetError())
	}
	var res struct{ T0, T1 float64 }
	if err := json.Unmarshal([]byte(got.GetResult()), &res); err != nil {
		t.Fatal(err)
	}
	if res.T0 != ann.T0 {
		t.Errorf("t0 = %v after replay, announced %v: sys.now was not replayed", res.T0, ann.T0)
	}
	if wake := float64(deadline.UnixMicro()) / 1e6; res.T1 < wake {
		t.Errorf("woke at %v, before the journaled deadline %v", res.T1, wake)
	}
	var sleeps []time.Time
	for _, e := range readRecord(t, dir, c1.addrs.Execution).Journal {
		if e.Kind == "sleep" {
			sleeps = append(sleeps, *e.Deadline)
		}
	}
	if len(sleeps) != 1 || !sleeps[0].Equal(deadline) {
		t.Errorf("sleep entries after restart = %v, want exactly the original %v", sleeps, deadline)
	}
	if n := len(announced); n != 0 {
		t.Errorf("announcement repeated %d times after restart", n)
	}
}
