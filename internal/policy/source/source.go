// Package source keeps a compiled policy document in force while its stored
// copy (a local file, a Secret Manager secret, a Cloud Storage object) changes
// underneath. It is generic over the compiled type so it does not depend on
// the policy parser.
//
// The rule that matters: a new version that cannot be loaded or compiled never
// replaces a good one. JIT Groups reads its policy from the secret
// `jit-<env>/versions/latest` and caches it for RESOURCE_CACHE_TIMEOUT
// (docs/jit-access.md §3.8); a broken push to that secret must not take access
// away from everyone, so here it is refused, logged at ERROR and reported once
// through Config.OnReject, while the last good version stays in force.
package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// DefaultTTL is how long a checked version is trusted before the source is
// asked again. JIT Groups defaults to 5 minutes (RESOURCE_CACHE_TIMEOUT) but
// documents changes as taking effect "typically less than a minute"
// (docs/jit-access.md §2.2, §3.8); 30 s keeps that promise while a check per
// instance every 30 s costs next to nothing (one small read).
const DefaultTTL = 30 * time.Second

// Compiler turns a stored document into its compiled form. The error should
// describe every problem in the document at once (errors.Join), since it
// ends up in the log line and the rejection event an administrator reads.
type Compiler[T any] func(data []byte) (T, error)

// Loader reads the newest stored version of the document. version identifies
// the content: two calls returning the same version must return the same
// data, so the source can skip recompiling. Each loader documents its form
// (file mtime+hash, Secret Manager version name, Cloud Storage generation).
//
// A loader that found a new version but could not use its content (say, a
// checksum mismatch) returns a *VersionError, so that version is refused like
// one that fails to compile; any other error is treated as transient.
type Loader interface {
	Load(ctx context.Context) (data []byte, version string, err error)
}

// VersionError reports that the stored version Version exists but its content
// is unusable. The source refuses that version (ERROR log, OnReject) instead
// of treating the failure as a transient outage.
type VersionError struct {
	Version string
	Err     error
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("version %s is unusable: %v", e.Version, e.Err)
}

func (e *VersionError) Unwrap() error { return e.Err }

// Rejection describes a refused version: the "error event" handed to
// Config.OnReject.
type Rejection struct {
	Version     string    // the refused version
	Err         error     // why: the compile error, or the loader's *VersionError
	Time        time.Time // when it was refused (Config.Now)
	KeptVersion string    // the good version that stays in force
}

// Config configures a Source.
type Config[T any] struct {
	// Loader reads the stored document. Required.
	Loader Loader
	// Compile compiles it. Required.
	Compile Compiler[T]
	// TTL is how long a check is trusted before the next Current re-checks.
	// Zero means DefaultTTL (30 s).
	TTL time.Duration
	// MaxStale, if positive, makes Current fail once the source could not be
	// reached for longer than this, so a long outage fails closed instead of
	// serving an ever older policy. Zero (the default) serves the last good
	// version forever. Must be at least TTL.
	MaxStale time.Duration
	// Now is the clock; nil means time.Now. Tests inject a fake.
	Now func() time.Time
	// Logger receives the load, refusal and outage lines; nil means
	// slog.Default().
	Logger *slog.Logger
	// OnReject, if set, is called once per refused version, on the goroutine
	// doing the reload. It must not call Reload (it would wait for itself).
	OnReject func(ctx context.Context, r Rejection)
}

// Validate reports every problem with the configuration at once.
func (c Config[T]) Validate() error {
	var errs []error
	if c.Loader == nil {
		errs = append(errs, errors.New("Loader is required"))
	}
	if c.Compile == nil {
		errs = append(errs, errors.New("Compile is required"))
	}
	if c.TTL < 0 {
		errs = append(errs, fmt.Errorf("TTL must not be negative, got %s", c.TTL))
	}
	ttl := c.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	switch {
	case c.MaxStale < 0:
		errs = append(errs, fmt.Errorf("MaxStale must not be negative, got %s", c.MaxStale))
	case c.MaxStale > 0 && c.MaxStale < ttl:
		errs = append(errs, fmt.Errorf("MaxStale (%s) must be at least TTL (%s)", c.MaxStale, ttl))
	}
	return errors.Join(errs...)
}

// Status is a snapshot of the source's state, for an admin or health page.
type Status struct {
	Version   string     // version in force
	LoadedAt  time.Time  // when it was compiled and put in force
	CheckedAt time.Time  // when the last check finished (success or not)
	ReachedAt time.Time  // when the loader last answered
	Rejected  *Rejection // the latest refused version still newer than Version, if any
	LastError error      // the last check's error (loader outage or refusal), nil if it succeeded
}

// Source serves the compiled policy, re-checking the stored copy at most once
// per TTL. It is safe for concurrent use.
type Source[T any] struct {
	loader   Loader
	compile  Compiler[T]
	ttl      time.Duration
	maxStale time.Duration
	now      func() time.Time
	log      *slog.Logger
	onReject func(context.Context, Rejection)
	where    string // loader description for logs

	// reload admits one check at a time; Current only tries it, Reload waits.
	reload chan struct{}

	mu        sync.RWMutex
	value     T
	version   string
	loadedAt  time.Time
	checkedAt time.Time
	reachedAt time.Time
	rejected  *Rejection
	lastErr   error
}

// New builds a Source and loads the document once. That first load must
// succeed, both loading and compiling: there is no good version to fall back
// on, and a service starting without a policy should fail loudly.
func New[T any](ctx context.Context, cfg Config[T]) (*Source[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid policy source config: %w", err)
	}
	s := &Source[T]{
		loader:   cfg.Loader,
		compile:  cfg.Compile,
		ttl:      cfg.TTL,
		maxStale: cfg.MaxStale,
		now:      cfg.Now,
		log:      cfg.Logger,
		onReject: cfg.OnReject,
		where:    describe(cfg.Loader),
		reload:   make(chan struct{}, 1),
	}
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	data, version, err := s.loader.Load(ctx)
	if err == nil && version == "" {
		err = errors.New("loader returned an empty version")
	}
	if err != nil {
		return nil, fmt.Errorf("failed to load policy from %s: %w", s.where, err)
	}
	value, err := s.safeCompile(data)
	if err != nil {
		return nil, fmt.Errorf("failed to compile policy version %s from %s: %w", version, s.where, err)
	}
	now := s.now()
	s.value, s.version = value, version
	s.loadedAt, s.checkedAt, s.reachedAt = now, now, now
	s.log.InfoContext(ctx, "policy loaded",
		"policy_location", s.where, "policy_version", version)
	return s, nil
}

// Current returns the policy in force and its version. When the last check is
// older than TTL, the calling goroutine re-checks first, unless another one is
// already doing so: then it gets the version in force without waiting. A
// failed re-check keeps the version in force (see package doc), so the error
// is nil unless MaxStale is set and exceeded.
func (s *Source[T]) Current(ctx context.Context) (T, string, error) {
	if s.stale() {
		select {
		case s.reload <- struct{}{}:
			if s.stale() { // another caller may have just finished
				_ = s.check(ctx) // outcome is logged and kept in Status
			}
			<-s.reload
		default:
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.maxStale > 0 {
		if age := s.now().Sub(s.reachedAt); age > s.maxStale {
			var zero T
			err := fmt.Errorf("policy source %s not reached for %s (more than MaxStale %s)",
				s.where, age.Round(time.Second), s.maxStale)
			if s.lastErr != nil {
				err = fmt.Errorf("%w: %w", err, s.lastErr)
			}
			return zero, "", err
		}
	}
	return s.value, s.version, nil
}

// Reload checks the stored copy now, waiting for a check already in progress
// to finish first. It returns nil when the version in force is the newest
// stored one, and the reason otherwise: the loader failed, or the newest
// version was refused (the last good one stays in force either way).
func (s *Source[T]) Reload(ctx context.Context) error {
	select {
	case s.reload <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("failed to wait for the policy reload in progress: %w", ctx.Err())
	}
	defer func() { <-s.reload }()
	return s.check(ctx)
}

// Status returns a snapshot of the source's state.
func (s *Source[T]) Status() Status {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Status{
		Version:   s.version,
		LoadedAt:  s.loadedAt,
		CheckedAt: s.checkedAt,
		ReachedAt: s.reachedAt,
		LastError: s.lastErr,
	}
	if s.rejected != nil {
		r := *s.rejected
		st.Rejected = &r
	}
	return st
}

func (s *Source[T]) versionInForce() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.version
}

func (s *Source[T]) stale() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.now().Sub(s.checkedAt) >= s.ttl
}

// check loads the newest version and puts it in force if it is new and
// compiles. The caller holds the reload slot.
func (s *Source[T]) check(ctx context.Context) error {
	data, version, err := s.loader.Load(ctx)
	if err == nil && version == "" {
		err = errors.New("loader returned an empty version")
	}
	now := s.now()
	if err != nil {
		// A VersionError naming the version in force is a glitch reading it
		// again (it compiled once), not a new version to refuse.
		if ve, ok := errors.AsType[*VersionError](err); ok && ve.Version != "" && ve.Version != s.versionInForce() {
			return s.refuse(ctx, ve.Version, err, now)
		}
		return s.outage(ctx, err, now)
	}

	s.mu.Lock()
	s.checkedAt, s.reachedAt = now, now
	kept, rejected := s.version, s.rejected
	if version == kept {
		s.rejected, s.lastErr = nil, nil
		s.mu.Unlock()
		return nil
	}
	if rejected != nil && rejected.Version == version {
		// Already refused and reported; stay quiet until a newer version.
		s.lastErr = rejected.Err
		s.mu.Unlock()
		return fmt.Errorf("policy version %s was refused: %w", version, rejected.Err)
	}
	s.mu.Unlock()

	value, err := s.safeCompile(data)
	if err != nil {
		return s.refuse(ctx, version, err, now)
	}
	s.mu.Lock()
	s.value, s.version, s.loadedAt = value, version, now
	s.rejected, s.lastErr = nil, nil
	s.mu.Unlock()
	s.log.InfoContext(ctx, "new policy version in force",
		"policy_location", s.where, "policy_version", version, "previous_version", kept)
	return nil
}

// outage records a loader failure that names no version: the source could not
// be read (network, permission, missing object). The version in force stays.
func (s *Source[T]) outage(ctx context.Context, err error, now time.Time) error {
	if ctx.Err() != nil {
		// The caller gave up; that says nothing about the source, so it does
		// not count as a check and the next caller tries again.
		return fmt.Errorf("failed to load policy from %s: %w", s.where, err)
	}
	s.mu.Lock()
	s.checkedAt, s.lastErr = now, err
	kept := s.version
	s.mu.Unlock()
	s.log.WarnContext(ctx, "failed to load policy; keeping the version in force",
		"policy_location", s.where, "kept_version", kept, "error", err.Error())
	return fmt.Errorf("failed to load policy from %s: %w", s.where, err)
}

// refuse records a version that cannot be used, logs it at ERROR and fires
// OnReject; both happen once per version because check skips a version
// already refused.
func (s *Source[T]) refuse(ctx context.Context, version string, err error, now time.Time) error {
	s.mu.Lock()
	s.checkedAt, s.reachedAt = now, now
	if s.rejected != nil && s.rejected.Version == version {
		s.lastErr = s.rejected.Err
		s.mu.Unlock()
		return fmt.Errorf("policy version %s was refused: %w", version, err)
	}
	r := Rejection{Version: version, Err: err, Time: now, KeptVersion: s.version}
	s.rejected, s.lastErr = &r, err
	s.mu.Unlock()
	s.log.ErrorContext(ctx, "refused new policy version; keeping the version in force",
		"policy_location", s.where, "policy_version", version,
		"kept_version", r.KeptVersion, "error", err.Error())
	if s.onReject != nil {
		s.onReject(ctx, r)
	}
	return fmt.Errorf("policy version %s was refused: %w", version, err)
}

// safeCompile turns a compiler panic into an error: a document that crashes
// the parser is a broken version like any other, not a reason to take the
// whole service down.
func (s *Source[T]) safeCompile(data []byte) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("policy compiler panicked: %v", p)
		}
	}()
	return s.compile(data)
}

func describe(l Loader) string {
	if st, ok := l.(fmt.Stringer); ok {
		return st.String()
	}
	return fmt.Sprintf("%T", l)
}
