package browsertest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/jitpipeline/jit/internal/browsertest"
)

func TestFindHonoursChrome(t *testing.T) {
	// t.Setenv: not parallel.
	tests := []struct {
		name    string
		chrome  string
		wantErr bool
	}{
		{name: "missing_binary", chrome: "/nonexistent/chromium", wantErr: true},
		{name: "existing_binary", chrome: "/bin/sh"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(browsertest.EnvChrome, tc.chrome)
			got, err := browsertest.Find()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Find() = %q, %v; want error %v", got, err, tc.wantErr)
			}
			if !tc.wantErr && got != tc.chrome {
				t.Errorf("Find() = %q, want %q", got, tc.chrome)
			}
		})
	}
}

func TestNewRendersAPage(t *testing.T) {
	t.Parallel()
	ctx := browsertest.New(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>hello</title><p id="p">from the server</p>`)
	}))
	t.Cleanup(srv.Close)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL)); err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#p")))
	if err != nil {
		t.Fatal(err)
	}
	if title != "hello" || text != "from the server" {
		t.Errorf("title %q, text %q; want hello, from the server", title, text)
	}
}

// Axe finds what axe-core finds: an image without a text alternative and
// an unlabelled field fail WCAG 2.1 A; the same page made right passes.
func TestAxe(t *testing.T) {
	t.Parallel()
	ctx := browsertest.New(t)
	pages := map[string]string{
		"/bad":  `<!doctype html><html lang="en"><head><title>bad</title></head><body><main><h1>Bad</h1><img src="x.png"><input type="text"></main></body></html>`,
		"/good": `<!doctype html><html lang="en"><head><title>good</title></head><body><main><h1>Good</h1><img src="x.png" alt="A logo"><label for="f">Name</label><input id="f" type="text"></main></body></html>`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; img-src 'self'") // axe is injected despite it
		fmt.Fprint(w, pages[r.URL.Path])
	}))
	t.Cleanup(srv.Close)
	ids := func(path string) map[string]bool {
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+path)); err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, v := range browsertest.Axe(t, ctx) {
			out[v.ID] = true
		}
		return out
	}
	if bad := ids("/bad"); !bad["image-alt"] || !bad["label"] {
		t.Errorf("violations on the bad page: %v, want image-alt and label", bad)
	}
	if good := ids("/good"); len(good) != 0 {
		t.Errorf("violations on the good page: %v", good)
	}
}
