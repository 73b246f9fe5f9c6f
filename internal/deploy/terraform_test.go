package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/deploy"
	"github.com/jitpipeline/jit/internal/policy/classic"
)

// plannedFunction is what Terraform plans for one Cloud Run function.
type plannedFunction struct {
	Service string
	Target  string // build_config.function_target
	Env     map[string]string
}

// terraformPlan plans terraform/ offline (the google provider from the
// filesystem mirror, a fake access token, no refresh; the project number
// is given, so no data source is read) with the test variables, and
// returns every planned Cloud Run function.
func terraformPlan(t *testing.T) []plannedFunction {
	t.Helper()
	planAll(t)
	return planned
}

// terraformClassicPlan is terraformPlan with classic mode on
// (tests/fixtures/classic.tfvars on top of the test variables).
func terraformClassicPlan(t *testing.T) []plannedFunction {
	t.Helper()
	planAll(t)
	return plannedClassic
}

func planAll(t *testing.T) {
	t.Helper()
	planOnce.Do(func() { planned, plannedClassic, planSkip, planErr = planFunctions() })
	if planSkip != "" {
		t.Skip(planSkip)
	}
	if planErr != nil {
		t.Fatal(planErr)
	}
}

// The plans are made once for the package's tests: init writes the lock
// file into terraform/, which two concurrent runs would race on.
var (
	planOnce       sync.Once
	planned        []plannedFunction
	plannedClassic []plannedFunction
	planJSON       []byte
	planSkip       string
	planErr        error
)

func planFunctions() (base, classic []plannedFunction, skip string, err error) {
	tf, err := exec.LookPath("terraform")
	if err != nil {
		return nil, nil, "terraform is not installed: the planned functions' configuration is not checked (.ci/run installs it)", nil
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return nil, nil, "", err
	}
	mirror := os.Getenv("TF_PLUGIN_DIR") // as make sets it
	if mirror == "" {
		mirror = filepath.Join(root, "..", "shared", "terraform-providers")
	}
	if _, err := os.Stat(mirror); err != nil {
		return nil, nil, fmt.Sprintf("no google provider mirror at %s (set TF_PLUGIN_DIR): the planned functions' configuration is not checked", mirror), nil
	}
	dir := filepath.Join(root, "terraform")
	data, err := os.MkdirTemp("", "jit-terraform-")
	if err != nil {
		return nil, nil, "", err
	}
	defer os.RemoveAll(data)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, tf, append([]string{"-chdir=" + dir}, args...)...)
		// Its own data directory and lock file, so that it races with no
		// other terraform run on the same checkout.
		cmd.Env = append(os.Environ(), "TF_DATA_DIR="+data, "TF_IN_AUTOMATION=1", "TF_INPUT=0",
			"GOOGLE_OAUTH_ACCESS_TOKEN=fake", "TF_CLI_CONFIG_FILE="+filepath.Join(data, "none.tfrc"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("terraform %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return out, nil
	}
	if _, err := run("init", "-backend=false", "-plugin-dir="+mirror); err != nil {
		return nil, nil, "", err
	}
	plan := func(varFiles ...string) ([]byte, error) {
		file := filepath.Join(data, "plan")
		args := []string{"plan", "-refresh=false", "-lock=false", "-out=" + file}
		for _, f := range varFiles {
			args = append(args, "-var-file="+f)
		}
		if _, err := run(args...); err != nil {
			return nil, err
		}
		return run("show", "-json", file)
	}
	if planJSON, err = plan("tests/fixtures/test.tfvars"); err != nil {
		return nil, nil, "", err
	}
	if base, err = parseFunctions(planJSON); err != nil {
		return nil, nil, "", err
	}
	out, err := plan("tests/fixtures/test.tfvars", "tests/fixtures/classic.tfvars")
	if err != nil {
		return nil, nil, "", err
	}
	if classic, err = parseFunctions(out); err != nil {
		return nil, nil, "", fmt.Errorf("with classic.tfvars: %w", err)
	}
	return base, classic, "", nil
}

// parseFunctions returns the Cloud Run functions of a plan's JSON.
func parseFunctions(out []byte) ([]plannedFunction, error) {
	var doc struct {
		ResourceChanges []struct {
			Type   string `json:"type"`
			Change struct {
				After json.RawMessage `json:"after"`
			} `json:"change"`
		} `json:"resource_changes"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("terraform show -json: %w", err)
	}
	var fns []plannedFunction
	for _, rc := range doc.ResourceChanges {
		if rc.Type != "google_cloud_run_v2_service" {
			continue
		}
		var after struct {
			Name        string `json:"name"`
			BuildConfig []struct {
				FunctionTarget string `json:"function_target"`
			} `json:"build_config"`
			Template []struct {
				Containers []struct {
					Env []struct {
						Name  string  `json:"name"`
						Value *string `json:"value"`
					} `json:"env"`
				} `json:"containers"`
			} `json:"template"`
		}
		if err := json.Unmarshal(rc.Change.After, &after); err != nil {
			return nil, fmt.Errorf("planned service: %w", err)
		}
		if len(after.BuildConfig) != 1 || len(after.Template) != 1 || len(after.Template[0].Containers) != 1 {
			return nil, fmt.Errorf("service %s: want one build_config and one container, got %+v", after.Name, after)
		}
		f := plannedFunction{Service: after.Name, Target: after.BuildConfig[0].FunctionTarget, Env: map[string]string{}}
		for _, e := range after.Template[0].Containers[0].Env {
			if e.Value == nil {
				return nil, fmt.Errorf("service %s: %s is not known when planning; settings must be derived from variables", f.Service, e.Name)
			}
			f.Env[e.Name] = *e.Value
		}
		fns = append(fns, f)
	}
	if len(fns) == 0 {
		return nil, errors.New("the plan has no Cloud Run functions")
	}
	return fns, nil
}

// TestTerraformConfiguresEveryFunction plans the Terraform module and runs
// each function's own start-up check (deploy.Config.ValidateFor, which
// jit.go runs for FUNCTION_TARGET) on the environment Terraform gives it,
// so the module and the code cannot drift apart.
func TestTerraformConfiguresEveryFunction(t *testing.T) {
	t.Parallel()
	t.Run("default", func(t *testing.T) { checkPlannedFunctions(t, terraformPlan(t)) })
	t.Run("classic", func(t *testing.T) { checkPlannedFunctions(t, terraformClassicPlan(t)) })
}

func checkPlannedFunctions(t *testing.T, fns []plannedFunction) {
	var targets []string
	for _, f := range fns {
		targets = append(targets, f.Target)
		t.Run(f.Service, func(t *testing.T) {
			if got := f.Env["FUNCTION_TARGET"]; got != f.Target {
				t.Errorf("FUNCTION_TARGET = %q, want the build's function_target %q", got, f.Target)
			}
			cfg := deploy.FromLookup(func(k string) string { return f.Env[k] })
			if err := cfg.ValidateFor(f.Target); err != nil {
				t.Errorf("the planned environment fails the %s function's check:\n%v", f.Target, err)
			}
			// The check is not vacuous: without its project the same
			// environment is refused.
			missing := deploy.FromLookup(func(k string) string {
				if k == "JIT_PROJECT" {
					return ""
				}
				return f.Env[k]
			})
			if err := missing.ValidateFor(f.Target); err == nil || !strings.Contains(err.Error(), "JIT_PROJECT") {
				t.Errorf("without JIT_PROJECT: got %v, want an error naming it", err)
			}
		})
	}
	sort.Strings(targets)
	want := slices.Clone(deploy.Targets)
	sort.Strings(want)
	if diff := cmp.Diff(want, targets); diff != "" {
		t.Errorf("deployed entry points differ from jit.go's (-registered +planned):\n%s", diff)
	}
}

// TestTerraformClassicSettings: with classic mode on (classic.tfvars),
// the six entry points that decide on entitlements read the scope and
// JIT Access's options as the module was given them, and revoke,
// revokeTask and sweep, which only remove grants, get none of them;
// without it no function is in classic mode.
func TestTerraformClassicSettings(t *testing.T) {
	t.Parallel()
	for _, f := range terraformPlan(t) {
		if cfg := deploy.FromLookup(func(k string) string { return f.Env[k] }); cfg.Classic.Enabled() {
			t.Errorf("service %s: classic mode is on without the classic variable (RESOURCE_SCOPE=%q)", f.Service, f.Env["RESOURCE_SCOPE"])
		}
	}
	want := classic.Config{
		Scope:       []string{"folders/222222222222", "projects/acme-sandbox"},
		MaxDuration: 240 * time.Minute, RequestTimeout: 30 * time.Minute,
		JustificationPattern: "[A-Z]+-[0-9]+", JustificationHint: "Ticket number",
		MaxRoles: 3, MinReviewers: 1, MaxReviewers: 2, MaxAge: 120 * time.Second, ReadsPerSecond: 4,
	}
	names := []string{"RESOURCE_SCOPE", "RESOURCE_CATALOG", "ACTIVATION_TIMEOUT", "JUSTIFICATION_PATTERN", "JUSTIFICATION_HINT",
		"ACTIVATION_REQUEST_MAX_ROLES", "ACTIVATION_REQUEST_TIMEOUT", "ACTIVATION_REQUEST_MIN_REVIEWERS",
		"ACTIVATION_REQUEST_MAX_REVIEWERS", "JIT_CATALOG_MAX_AGE", "JIT_CATALOG_READS_PER_SECOND", "ELEVATION_DURATION"}
	for _, f := range terraformClassicPlan(t) {
		cfg := deploy.FromLookup(func(k string) string { return f.Env[k] })
		switch f.Target {
		case "revoke", "revokeTask", "sweep":
			for _, k := range names {
				if v, ok := f.Env[k]; ok {
					t.Errorf("service %s: %s=%q, but it decides on no entitlement", f.Service, k, v)
				}
			}
			continue
		}
		got, err := cfg.Classic.Options()
		if err != nil {
			t.Errorf("service %s: %v", f.Service, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("service %s: classic options differ from classic.tfvars (-want +got):\n%s", f.Service, diff)
		}
	}
}

// TestTerraformSecretsStayOutOfTheEnvironment: no planned function gets a
// password or key in its environment, only the names of secrets.
func TestTerraformSecretsStayOutOfTheEnvironment(t *testing.T) {
	t.Parallel()
	for _, f := range append(terraformPlan(t), terraformClassicPlan(t)...) {
		for k, v := range f.Env {
			if strings.Contains(v, "not-a-real-password") {
				t.Errorf("service %s: %s carries the SMTP password", f.Service, k)
			}
			if strings.Contains(strings.ToUpper(k), "PASSWORD") && !strings.HasSuffix(k, "_SECRET") {
				t.Errorf("service %s: %s looks like a secret in the environment", f.Service, k)
			}
		}
	}
}

// TestTerraformPlanShape checks what the least-privilege tests in
// terraform/tests cannot see from inside the module: which kinds of
// resource the plan holds, that no IAM member anywhere is public, and that
// every trigger waits for the service agents' roles.
func TestTerraformPlanShape(t *testing.T) {
	t.Parallel()
	terraformPlan(t)
	var doc struct {
		ResourceChanges []struct {
			Address string                         `json:"address"`
			Type    string                         `json:"type"`
			Change  struct{ After map[string]any } `json:"change"`
		} `json:"resource_changes"`
		Configuration struct {
			RootModule struct {
				Resources []struct {
					Address   string   `json:"address"`
					DependsOn []string `json:"depends_on"`
				} `json:"resources"`
			} `json:"root_module"`
		} `json:"configuration"`
	}
	if err := json.Unmarshal(planJSON, &doc); err != nil {
		t.Fatal(err)
	}
	types := map[string]int{}
	for _, rc := range doc.ResourceChanges {
		types[rc.Type]++
		if m, ok := rc.Change.After["member"].(string); ok && (m == "allUsers" || m == "allAuthenticatedUsers") {
			t.Errorf("%s grants %s", rc.Address, m)
		}
	}
	// IAP directly on Cloud Run: no OAuth brand or client (the IAP OAuth
	// Admin API is gone), no load balancer.
	for _, banned := range []string{"google_iap_brand", "google_iap_client", "google_compute_backend_service",
		"google_compute_region_backend_service", "google_compute_url_map", "google_compute_global_forwarding_rule",
		"google_cloudfunctions_function", "google_cloud_run_service_iam_member"} {
		if types[banned] > 0 {
			t.Errorf("the plan has %d %s", types[banned], banned)
		}
	}
	want := map[string]int{
		"google_cloud_run_v2_service": len(deploy.Targets),
		"google_eventarc_trigger":     6, // five functions and the workflow
		"google_workflows_workflow":   1,
		"google_cloud_tasks_queue":    1,
		"google_cloud_scheduler_job":  1,
	}
	for typ, n := range want {
		if types[typ] != n {
			t.Errorf("%s: planned %d, want %d", typ, types[typ], n)
		}
	}
	for _, r := range doc.Configuration.RootModule.Resources {
		if strings.HasPrefix(r.Address, "google_eventarc_trigger.") && !slices.Contains(r.DependsOn, "terraform_data.propagation") {
			t.Errorf("%s does not wait for the service agents' roles (depends_on %v)", r.Address, r.DependsOn)
		}
	}
}
