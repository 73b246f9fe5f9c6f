package groups

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// DefaultTTL is how long a Cache keeps an answer: JIT Groups caches subject
// principals for 30 s (docs/jit-access.md §3.3), short next to the minutes
// Google takes to propagate a membership change (docs/google-cloud.md §8).
const DefaultTTL = 30 * time.Second

// sweepEvery bounds the memory of expired entries: after this many loads the
// cache drops every expired entry.
const sweepEvery = 256

// Cache is a Resolver that remembers the answers of another for a short
// time. Errors are not remembered, and concurrent misses for the same key
// share one call to the inner resolver.
type Cache struct {
	inner Resolver
	ttl   time.Duration
	now   func() time.Time

	mu      sync.Mutex
	entries map[cacheKey]*cacheEntry
	loads   int
}

var _ Resolver = (*Cache)(nil)

type cacheKey struct {
	members bool // MembersOf rather than GroupsOf
	email   string
}

// cacheEntry is one answer, or a load in flight until done is closed.
type cacheEntry struct {
	done    chan struct{}
	value   []string
	err     error
	expires time.Time
}

// NewCache wraps inner. A ttl of zero or less means DefaultTTL; a nil now
// means time.Now.
func NewCache(inner Resolver, ttl time.Duration, now func() time.Time) *Cache {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Cache{inner: inner, ttl: ttl, now: now, entries: map[cacheKey]*cacheEntry{}}
}

// GroupsOf returns inner's GroupsOf, cached per email.
func (c *Cache) GroupsOf(ctx context.Context, email string) ([]string, error) {
	return c.get(ctx, cacheKey{email: Normalize(email)}, c.inner.GroupsOf)
}

// MembersOf returns inner's MembersOf, cached per group.
func (c *Cache) MembersOf(ctx context.Context, group string) ([]string, error) {
	return c.get(ctx, cacheKey{members: true, email: Normalize(group)}, c.inner.MembersOf)
}

// Invalidate forgets every answer, e.g. after the local world changed. Loads
// in flight still answer their callers but are not kept.
func (c *Cache) Invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
}

func (c *Cache) get(ctx context.Context, key cacheKey, load func(context.Context, string) ([]string, error)) ([]string, error) {
	for {
		c.mu.Lock()
		e := c.entries[key]
		if e != nil && isDone(e) && !c.now().Before(e.expires) {
			delete(c.entries, key)
			e = nil
		}
		if e == nil {
			e = &cacheEntry{done: make(chan struct{})}
			c.entries[key] = e
			c.maybeSweepLocked()
			c.mu.Unlock()
			return c.fill(ctx, key, e, load)
		}
		c.mu.Unlock()

		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err == nil {
			return slices.Clone(e.value), nil
		}
		// The load we waited for failed because its caller gave up; this
		// caller has not, so it loads again rather than inherit that.
		if isContextErr(e.err) && ctx.Err() == nil {
			continue
		}
		return nil, e.err
	}
}

// fill runs the load for an entry this caller created and publishes the
// result to everyone waiting on it.
func (c *Cache) fill(ctx context.Context, key cacheKey, e *cacheEntry, load func(context.Context, string) ([]string, error)) (value []string, err error) {
	published := false
	publish := func() {
		c.mu.Lock()
		e.value, e.err = value, err
		e.expires = c.now().Add(c.ttl)
		if err != nil && c.entries[key] == e {
			delete(c.entries, key) // errors are not cached
		}
		c.mu.Unlock()
		close(e.done)
		published = true
	}
	defer func() {
		if !published { // load panicked: release the waiters, then re-panic
			err = errLoadPanicked
			publish()
		}
	}()
	value, err = load(ctx, key.email)
	publish()
	if err != nil {
		return nil, err
	}
	return slices.Clone(value), nil
}

// errLoadPanicked is what waiters get when the load they waited for panicked.
var errLoadPanicked = errors.New("group membership lookup panicked")

// maybeSweepLocked drops expired entries now and then. Callers hold mu.
func (c *Cache) maybeSweepLocked() {
	c.loads++
	if c.loads%sweepEvery != 0 {
		return
	}
	now := c.now()
	for k, e := range c.entries {
		if isDone(e) && !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
}

func isDone(e *cacheEntry) bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
