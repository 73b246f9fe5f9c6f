package classic

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Env are JIT Access 1.x's options, under JIT Access's own names
// where they mean the same (docs/migrate-from-jit-access.md has the
// table). Setting RESOURCE_SCOPE turns classic mode on: eligible role
// bindings in the scope's IAM policies become entitlements beside the
// policy document's.
type Env struct {
	Scope              string // RESOURCE_SCOPE: comma-separated projects/ID, folders/N, organizations/N
	Catalog            string // RESOURCE_CATALOG: AssetInventory or PolicyAnalyzer, accepted and ignored (Resource Manager is read instead)
	ProjectsQuery      string // AVAILABLE_PROJECTS_QUERY: refused; every project of the scope is looked at
	ActivationTimeout  string // ACTIVATION_TIMEOUT (legacy ELEVATION_DURATION, which wins): minutes, default 120
	Pattern            string // JUSTIFICATION_PATTERN: a regular expression (RE2) the whole justification must match, default .*
	Hint               string // JUSTIFICATION_HINT: default "Bug or case number"
	MaxRoles           string // ACTIVATION_REQUEST_MAX_ROLES: default 10
	RequestTimeout     string // ACTIVATION_REQUEST_TIMEOUT: minutes, default 60, at most ACTIVATION_TIMEOUT
	MinReviewers       string // ACTIVATION_REQUEST_MIN_REVIEWERS: default 1
	MaxReviewers       string // ACTIVATION_REQUEST_MAX_REVIEWERS: default 10
	CacheTimeout       string // JIT_CATALOG_MAX_AGE: seconds a listing may use a cached IAM policy, default 300
	ReadsPerSecond     string // JIT_CATALOG_READS_PER_SECOND: Resource Manager calls a second per instance, default 5
	elevationOverrides bool
}

// FromLookup reads JIT Access's options from getenv, which returns ""
// for an unset variable (os.Getenv): the deployed functions and jit local
// read the same names.
func FromLookup(getenv func(string) string) Env {
	c := Env{
		Scope: getenv("RESOURCE_SCOPE"), Catalog: getenv("RESOURCE_CATALOG"), ProjectsQuery: getenv("AVAILABLE_PROJECTS_QUERY"),
		ActivationTimeout: getenv("ACTIVATION_TIMEOUT"),
		Pattern:           getenv("JUSTIFICATION_PATTERN"), Hint: getenv("JUSTIFICATION_HINT"),
		MaxRoles:       getenv("ACTIVATION_REQUEST_MAX_ROLES"),
		RequestTimeout: getenv("ACTIVATION_REQUEST_TIMEOUT"),
		MinReviewers:   getenv("ACTIVATION_REQUEST_MIN_REVIEWERS"), MaxReviewers: getenv("ACTIVATION_REQUEST_MAX_REVIEWERS"),
		CacheTimeout: getenv("JIT_CATALOG_MAX_AGE"), ReadsPerSecond: getenv("JIT_CATALOG_READS_PER_SECOND"),
	}
	// JIT Access reads the legacy name first, so it wins when both are set.
	if v := getenv("ELEVATION_DURATION"); v != "" {
		c.ActivationTimeout, c.elevationOverrides = v, true
	}
	return c
}

// Enabled reports whether classic mode is on.
func (c Env) Enabled() bool { return strings.TrimSpace(c.Scope) != "" }

// Options turns the settings into the catalog's configuration (without
// its clients), reporting every problem at once. With classic mode off,
// setting any other option is an error: it would do nothing.
func (c Env) Options() (Config, error) {
	var cfg Config
	var errs []error
	if !c.Enabled() {
		for name, v := range map[string]string{
			"ACTIVATION_REQUEST_MAX_ROLES": c.MaxRoles, "ACTIVATION_REQUEST_MIN_REVIEWERS": c.MinReviewers,
			"ACTIVATION_REQUEST_MAX_REVIEWERS": c.MaxReviewers, "JUSTIFICATION_PATTERN": c.Pattern,
		} {
			if v != "" {
				errs = append(errs, fmt.Errorf("%s is set but RESOURCE_SCOPE is not: JIT Access's options apply to the eligible bindings of a scope", name))
			}
		}
		return cfg, errors.Join(errs...)
	}
	for _, r := range strings.Split(c.Scope, ",") {
		if r = strings.TrimSpace(r); r != "" {
			cfg.Scope = append(cfg.Scope, r)
		}
	}
	switch c.Catalog {
	case "", "AssetInventory", "PolicyAnalyzer":
	default:
		errs = append(errs, fmt.Errorf("RESOURCE_CATALOG must be AssetInventory or PolicyAnalyzer (both read IAM through Resource Manager here), got %q", c.Catalog))
	}
	if c.ProjectsQuery != "" {
		errs = append(errs, errors.New("AVAILABLE_PROJECTS_QUERY is not supported: every project of RESOURCE_SCOPE is looked at, and each user sees only the projects they are eligible on; unset it"))
	}
	minutes := func(name, v string) time.Duration {
		if v == "" {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("%s must be a positive number of minutes, got %q", name, v))
			return 0
		}
		return time.Duration(n) * time.Minute
	}
	count := func(name, v string) int {
		if v == "" {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("%s must be a positive whole number, got %q", name, v))
			return 0
		}
		return n
	}
	timeoutName := "ACTIVATION_TIMEOUT"
	if c.elevationOverrides {
		timeoutName = "ELEVATION_DURATION"
	}
	cfg.MaxDuration = minutes(timeoutName, c.ActivationTimeout)
	cfg.RequestTimeout = minutes("ACTIVATION_REQUEST_TIMEOUT", c.RequestTimeout)
	cfg.MaxRoles = count("ACTIVATION_REQUEST_MAX_ROLES", c.MaxRoles)
	cfg.MinReviewers = count("ACTIVATION_REQUEST_MIN_REVIEWERS", c.MinReviewers)
	cfg.MaxReviewers = count("ACTIVATION_REQUEST_MAX_REVIEWERS", c.MaxReviewers)
	if c.CacheTimeout != "" {
		n, err := strconv.Atoi(c.CacheTimeout)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("JIT_CATALOG_MAX_AGE must be a positive number of seconds, got %q", c.CacheTimeout))
		}
		cfg.MaxAge = time.Duration(n) * time.Second
	}
	if c.ReadsPerSecond != "" {
		n, err := strconv.ParseFloat(c.ReadsPerSecond, 64)
		if err != nil || n <= 0 || n > 10 {
			errs = append(errs, fmt.Errorf("JIT_CATALOG_READS_PER_SECOND must be a number above 0 and at most 10 (Resource Manager's read quota a second), got %q", c.ReadsPerSecond))
		}
		cfg.ReadsPerSecond = n
	}
	if c.Pattern != "" {
		if _, err := regexp.Compile(c.Pattern); err != nil {
			errs = append(errs, fmt.Errorf("JUSTIFICATION_PATTERN is not a regular expression this pipeline accepts (RE2 syntax): %w", err))
		}
	}
	cfg.JustificationPattern, cfg.JustificationHint = c.Pattern, c.Hint
	if err := cfg.ValidateOptions(); err != nil {
		errs = append(errs, fmt.Errorf("RESOURCE_SCOPE and JIT Access's options: %w", err))
	}
	return cfg, errors.Join(errs...)
}
