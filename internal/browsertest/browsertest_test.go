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
