// Package benchref holds the references of `make bench`: the things a
// measure of the pipeline is divided by, so that the table reads as ratios
// that do not depend on the machine (docs/performance.md). Each benchmark
// measures its reference in the same run, on the same machine, just before
// or interleaved with the thing measured.
//
// The references:
//   - a no-op functions-framework HTTP function, and one that makes one
//     durable SQLite commit (WAL, synchronous=FULL: the ledger's own
//     settings), served by net/http on loopback as funcframework serves a
//     function;
//   - one IAM policy read-modify-write through the real Resource Manager
//     client (GetIamPolicy and SetIamPolicy at version 3 with the etag),
//     against whichever IAM server the benchmark uses;
//   - a hello-world functions-framework binary (package coldstart's
//     benchmark builds it).
package benchref

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"github.com/googleapis/gax-go/v2"
	_ "modernc.org/sqlite" // the ledger's SQLite driver
)

// NoopFunction is the cheapest functions-framework HTTP function: it
// answers 200 with a fixed body.
func NoopFunction(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"ok":true}`)
}

// Committer is a functions-framework HTTP function that stores each
// request's body in one durable SQLite commit before answering 201: the
// floor of any handler that must not lose what it acknowledged.
type Committer struct {
	db *sql.DB
	n  atomic.Int64
}

// NewCommitter opens (creating) a SQLite file in dir with the ledger's
// settings: WAL, synchronous=FULL, a busy timeout, IMMEDIATE transactions.
func NewCommitter(dir string) (*Committer, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	path := filepath.Join(dir, "reference.db")
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("failed to open %s: %w", path, err)
	}
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, body BLOB NOT NULL)`); err != nil {
		db.Close()
		return nil, fmt.Errorf("failed to create the reference table: %w", err)
	}
	return &Committer{db: db}, nil
}

// Close closes the database.
func (c *Committer) Close() error { return c.db.Close() }

// ServeHTTP commits the body, then answers.
func (c *Committer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	tx, err := c.db.BeginTx(r.Context(), nil)
	if err == nil {
		_, err = tx.Exec(`INSERT INTO requests (id, body) VALUES (?, ?)`, c.n.Add(1), body)
		if err == nil {
			err = tx.Commit()
		} else {
			_ = tx.Rollback()
		}
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, `{"ok":true}`)
}

// Serve serves h on a loopback port until the returned stop is called.
func Serve(h http.Handler) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("failed to listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with ErrServerClosed at stop
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// Load is a closed-loop load: Workers goroutines each send one request and
// wait for its answer before sending the next, N requests in all.
type Load struct {
	Workers int
	N       int
	// Request builds request i; its answer must have status Want.
	Request func(ctx context.Context, i int) (*http.Request, error)
	Want    int
	Client  *http.Client
}

// Run sends the load and returns the requests per second it sustained.
func (l Load) Run(ctx context.Context) (float64, error) {
	client := l.Client
	if client == nil {
		client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: l.Workers, MaxConnsPerHost: l.Workers}}
	}
	var next atomic.Int64
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	start := time.Now()
	for range l.Workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= l.N || ctx.Err() != nil {
					return
				}
				if err := l.one(ctx, client, i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return float64(l.N) / elapsed.Seconds(), nil
}

func (l Load) one(ctx context.Context, client *http.Client, i int) error {
	req, err := l.Request(ctx, i)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("request %d: %w", i, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != l.Want {
		return fmt.Errorf("request %d: status %d, want %d: %s", i, resp.StatusCode, l.Want, bytes.TrimSpace(body))
	}
	return nil
}

// IAMClient is the slice of a Resource Manager client the reference
// read-modify-write uses.
type IAMClient interface {
	GetIamPolicy(ctx context.Context, req *iampb.GetIamPolicyRequest, opts ...gax.CallOption) (*iampb.Policy, error)
	SetIamPolicy(ctx context.Context, req *iampb.SetIamPolicyRequest, opts ...gax.CallOption) (*iampb.Policy, error)
}

// ReadModifyWrite is one IAM policy read-modify-write as the grant
// function makes it: read at version 3, add or remove member's binding of
// role, write at version 3 with the etag of the read. Calls alternate
// between adding and removing, so the policy does not grow.
func ReadModifyWrite(ctx context.Context, c IAMClient, resource, role, member string) error {
	p, err := c.GetIamPolicy(ctx, &iampb.GetIamPolicyRequest{Resource: resource, Options: &iampb.GetPolicyOptions{RequestedPolicyVersion: 3}})
	if err != nil {
		return fmt.Errorf("reference read of %s: %w", resource, err)
	}
	removed := false
	for i, b := range p.Bindings {
		if b.Role == role && b.Condition == nil && slices.Contains(b.Members, member) {
			b.Members = slices.DeleteFunc(b.Members, func(m string) bool { return m == member })
			if len(b.Members) == 0 {
				p.Bindings = slices.Delete(p.Bindings, i, i+1)
			}
			removed = true
			break
		}
	}
	if !removed {
		p.Bindings = append(p.Bindings, &iampb.Binding{Role: role, Members: []string{member}})
	}
	p.Version = 3
	if _, err := c.SetIamPolicy(ctx, &iampb.SetIamPolicyRequest{Resource: resource, Policy: p}); err != nil {
		return fmt.Errorf("reference write of %s: %w", resource, err)
	}
	return nil
}

// Median returns the median of xs (the mean of the middle two for an even
// count); 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// Millis is d in milliseconds.
func Millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
