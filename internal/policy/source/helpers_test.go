package source_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jitpipeline/jit/internal/logging"
	"github.com/jitpipeline/jit/internal/policy/source"
)

// discard is the logger for tests that do not look at the log.
var discard = slog.New(slog.DiscardHandler)

// epoch is the fake clock's start.
var epoch = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// clock is a fake clock advanced by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: epoch} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeLoader returns whatever the test set last and counts calls.
type fakeLoader struct {
	mu      sync.Mutex
	data    []byte
	version string
	err     error
	calls   int
}

func newFakeLoader(data, version string) *fakeLoader {
	return &fakeLoader{data: []byte(data), version: version}
}

func (l *fakeLoader) Load(ctx context.Context) ([]byte, string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	if l.err != nil {
		return nil, "", l.err
	}
	return bytes.Clone(l.data), l.version, nil
}

func (l *fakeLoader) set(data, version string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.data, l.version, l.err = []byte(data), version, nil
}

func (l *fakeLoader) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.err = err
}

func (l *fakeLoader) Calls() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls
}

func (l *fakeLoader) String() string { return "fake:policy" }

// doc is the compiled type in tests.
type doc struct{ Text string }

// compiler compiles "good…" documents and refuses anything starting with
// "bad", counting calls per input.
type compiler struct {
	mu    sync.Mutex
	calls map[string]int
}

func newCompiler() *compiler { return &compiler{calls: map[string]int{}} }

func (c *compiler) Compile(data []byte) (doc, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[string(data)]++
	if s := string(data); strings.HasPrefix(s, "bad") {
		return doc{}, errors.Join(errors.New("line 1: unknown field \"bogus\""), errors.New("line 2: bad expiry"))
	}
	return doc{Text: string(data)}, nil
}

func (c *compiler) Calls(data string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[data]
}

func (c *compiler) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.calls {
		n += v
	}
	return n
}

// logBuffer collects the JSON lines of a Cloud Logging-style logger.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the logged entries of the given severity ("" for all).
func (b *logBuffer) lines(t *testing.T, severity string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		if severity == "" || m[logging.KeySeverity] == severity {
			out = append(out, m)
		}
	}
	return out
}

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return logging.New(b, slog.LevelDebug), b
}

// rejections records OnReject calls.
type rejections struct {
	mu   sync.Mutex
	list []source.Rejection
}

func (r *rejections) OnReject(_ context.Context, rej source.Rejection) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, rej)
}

func (r *rejections) Get() []source.Rejection {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]source.Rejection(nil), r.list...)
}

// harness is a Source over a fakeLoader with every observation point wired.
type harness struct {
	src     *source.Source[doc]
	loader  *fakeLoader
	comp    *compiler
	clock   *clock
	logs    *logBuffer
	rejects *rejections
}

func newHarness(t *testing.T, ttl time.Duration) *harness {
	t.Helper()
	h := &harness{
		loader:  newFakeLoader("good v1", "v1"),
		comp:    newCompiler(),
		clock:   newClock(),
		rejects: &rejections{},
	}
	logger, logs := newLogger()
	h.logs = logs
	src, err := source.New(t.Context(), source.Config[doc]{
		Loader:   h.loader,
		Compile:  h.comp.Compile,
		TTL:      ttl,
		Now:      h.clock.Now,
		Logger:   logger,
		OnReject: h.rejects.OnReject,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.src = src
	return h
}

// current calls Current and fails the test on error.
func (h *harness) current(t *testing.T) (string, string) {
	t.Helper()
	d, v, err := h.src.Current(t.Context())
	if err != nil {
		t.Fatalf("Current: %v", err)
	}
	return d.Text, v
}
