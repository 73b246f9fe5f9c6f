// Package browsertest runs tests in a real Chromium, through the DevTools
// protocol (chromedp): what a page does in a browser — its CSP, its forms
// without JavaScript, its redirects and cookies — is only seen there.
// Without a browser the tests skip, saying how to install one.
package browsertest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// EnvChrome names a browser binary to use instead of looking on PATH.
const EnvChrome = "CHROME"

// candidates are the names Chromium goes by, tried in order on PATH.
var candidates = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// ErrNotFound is Find's answer when there is no browser.
var ErrNotFound = errors.New("chromium not found: apt-get install chromium, or set " + EnvChrome)

// Find returns the browser to run: $CHROME if set (it must exist), else
// the first of chromium, chromium-browser and google-chrome on PATH.
func Find() (string, error) {
	if c := os.Getenv(EnvChrome); c != "" {
		p, err := exec.LookPath(c)
		if err != nil {
			return "", errors.Join(ErrNotFound, err)
		}
		return p, nil
	}
	for _, name := range candidates {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNotFound
}

// Timeout bounds each browser's whole life in a test: a hung page fails
// the test rather than the package's -timeout.
const Timeout = 60 * time.Second

// New starts a headless browser for the test — a profile of its own in a
// temporary directory, no sandbox (CI runs as root, where Chromium's
// sandbox refuses to start) — and returns the context to run chromedp
// actions in (each tab a chromedp.NewContext of it). The browser is closed
// when the test ends. Without a browser, the test is skipped.
func New(t testing.TB) context.Context {
	t.Helper()
	path, err := Find()
	if err != nil {
		t.Skip(err.Error()) // "chromium not found: apt-get install chromium, …"
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-dev-shm-usage", true), // containers have a small /dev/shm
	)
	ctx, cancelTimeout := context.WithTimeout(context.Background(), Timeout)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	browser, cancelBrowser := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	// Start the browser now, so a browser that cannot start fails here
	// with its own words rather than in the test's first action.
	if err := chromedp.Do(browser); err != nil {
		cancelBrowser()
		cancelAlloc()
		cancelTimeout()
		t.Fatalf("starting %s: %v", path, err)
	}
	t.Cleanup(func() {
		cancelBrowser() // closes the browser, and waits for it
		cancelAlloc()
		cancelTimeout()
	})
	return browser
}

// Run runs a in the browser of ctx and returns its result, failing the
// test on an error.
func Run[T any](t testing.TB, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// WaitNavigation runs a (a click) that loads a new page and waits for it.
func WaitNavigation(a chromedp.Action[chromedp.Void]) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.RunResponse(ctx, a)
		return err
	})
}
