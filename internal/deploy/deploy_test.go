package deploy_test

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	_ "github.com/jitpipeline/jit" // the root package registers the functions
	"github.com/jitpipeline/jit/internal/deploy"
)

const serveEnv = "DEPLOY_SERVE_TARGET"

// TestServeTarget is the child process of TestFunctionsFramework: it serves
// one registered function with functions-framework, as Cloud Functions
// does (FUNCTION_TARGET set, the function at "/").
func TestServeTarget(t *testing.T) {
	addr := os.Getenv(serveEnv)
	if addr == "" {
		t.Skip("child process of TestFunctionsFramework")
	}
	host, port, _ := net.SplitHostPort(addr)
	if err := funcframework.StartHostPort(host, port); err != nil {
		t.Fatal(err)
	}
}

// Every entry point the Terraform deploys is registered with
// functions-framework under its name and, configured, starts (fact:
// docs/google-cloud.md §6 — FUNCTION_TARGET selects the function, served at
// "/"). Without Google credentials its clients cannot be built, so the
// first invocation answers with that problem instead of crashing, and the
// next one tries again. (Unconfigured, it does not start: jit_test.go.)
func TestFunctionsFramework(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes; skipped with -short")
	}
	t.Parallel()
	pubsub := map[string]string{"ce-specversion": "1.0", "ce-type": "google.cloud.pubsub.topic.v1.messagePublished", "ce-source": "//pubsub.googleapis.com/projects/p/topics/t", "ce-id": "1", "Content-Type": "application/json"}
	for _, tc := range []struct {
		target  string
		request string // "METHOD PATH"
		want    string
		headers map[string]string
		code    int
	}{
		{"intake", "GET /", "credentials", nil, http.StatusServiceUnavailable},
		{"approval", "POST /", "credentials", nil, http.StatusServiceUnavailable},
		{"approval", "GET /approvals/g-1?t=x", "credentials", nil, http.StatusServiceUnavailable},
		{"sweep", "POST /", "credentials", nil, http.StatusServiceUnavailable},
		{"revokeTask", "POST /", "credentials", nil, http.StatusServiceUnavailable},
		{"grant", "POST /", "", pubsub, http.StatusInternalServerError},
		{"revoke", "POST /", "", pubsub, http.StatusInternalServerError},
		{"intakeRequests", "POST /", "", pubsub, http.StatusInternalServerError},
		{"approvalEvents", "POST /", "", pubsub, http.StatusInternalServerError},
		{"approvalNotify", "POST /", "", pubsub, http.StatusInternalServerError},
	} {
		method, path, _ := strings.Cut(tc.request, " ")
		t.Run(tc.target+" "+method, func(t *testing.T) {
			t.Parallel()
			l, _ := net.Listen("tcp", "127.0.0.1:0")
			addr := l.Addr().String()
			l.Close()
			cmd := exec.Command(os.Args[0], "-test.run=^TestServeTarget$")
			cmd.Env = append(append(cleanEnv(), serveEnv+"="+addr, "FUNCTION_TARGET="+tc.target), configured(t)...)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) //nolint:errcheck // killed
			var resp *http.Response
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(`{"message":{"data":"e30=","messageId":"1"},"subscription":"projects/p/subscriptions/s"}`))
				for k, v := range tc.headers {
					req.Header.Set(k, v)
				}
				var err error
				if resp, err = http.DefaultClient.Do(req); err == nil {
					break
				}
			}
			if resp == nil {
				t.Fatal("the function was not served")
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.want) {
				t.Errorf("%s: %d %q; want %d containing %q", tc.target, resp.StatusCode, body, tc.code, tc.want)
			}
		})
	}
}

// configured is every setting of every function, and credentials that
// cannot be found (so nothing reaches Google).
func configured(t testing.TB) []string {
	return []string{
		"JIT_PROJECT=p", "JIT_POLICY=gs://b/policy.yaml",
		"JIT_WORKFLOW=projects/p/locations/europe-west1/workflows/grant-lifecycle",
		"JIT_REVOKE_QUEUE=projects/p/locations/europe-west1/queues/revocations",
		"JIT_REVOKE_URL=https://revoke-task.example.run.app",
		"JIT_TASKS_SERVICE_ACCOUNT=jit-tasks@p.iam.gserviceaccount.com",
		"JIT_IAP_AUDIENCES=/projects/1/locations/europe-west1/services/intake",
		"JIT_SWEEP_URL=https://sweep.example.run.app",
		"JIT_SCHEDULER_SERVICE_ACCOUNT=jit-scheduler@p.iam.gserviceaccount.com",
		"JIT_PAGES_URL=https://approval.example.com", "JIT_MAIL_FROM=jit@example.com",
		"JIT_SMTP_HOST=smtp.example.com", "JIT_SMTP_USERNAME=jit",
		"JIT_SMTP_PASSWORD_SECRET=projects/p/secrets/smtp-password/versions/latest",
		"JIT_LINK_SECRET=projects/p/secrets/approval-link-key",
		"GOOGLE_APPLICATION_CREDENTIALS=" + t.TempDir() + "/no-such-credentials.json",
	}
}

func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "JIT_") && !strings.HasPrefix(kv, "GOOGLE_") && !strings.HasPrefix(kv, "CLOUDSDK_") {
			out = append(out, kv)
		}
	}
	return out
}

func TestValidateReportsEverything(t *testing.T) {
	t.Parallel()
	err := deploy.Config{RevokeQueue: "q", RevokeURL: "http://x", TasksSA: "x"}.Validate(true)
	for _, want := range []string{"JIT_PROJECT", "JIT_POLICY", "JIT_REVOKE_QUEUE", "JIT_REVOKE_URL", "JIT_TASKS_SERVICE_ACCOUNT"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, missing %s", err, want)
		}
	}
}

// The approval function's three entry points need the mail, link and
// pages settings; each problem is reported at once, by its variable.
func TestValidateForApprovalTargets(t *testing.T) {
	t.Parallel()
	valid := deploy.Config{
		Project: "p", Policy: "gs://b/o", Workflow: "projects/p/locations/l/workflows/w",
		IAPAudiences: []string{"/projects/1/locations/l/services/approval"},
		PagesURL:     "https://approval.example.com", MailFrom: "jit@example.com",
		SMTPHost: "smtp.example.com", SMTPSecurity: "starttls", SMTPUsername: "jit",
		SMTPPasswordSecret: "projects/p/secrets/smtp/versions/3", LinkSecret: "projects/p/secrets/links",
	}
	with := func(change func(*deploy.Config)) deploy.Config {
		c := valid
		change(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  deploy.Config
		want []string // nil: valid
	}{
		{"configured", valid, nil},
		{"without a username or password", with(func(c *deploy.Config) { c.SMTPUsername, c.SMTPPasswordSecret = "", "" }), nil},
		{"the latest password", with(func(c *deploy.Config) { c.SMTPPasswordSecret = "projects/p/secrets/smtp/versions/latest" }), nil},
		{"implicit TLS on a port of its own", with(func(c *deploy.Config) { c.SMTPSecurity, c.SMTPPort = "tls", "2465" }), nil},
		{"pages on a port", with(func(c *deploy.Config) { c.PagesURL = "https://approval.example.com:8443" }), nil},
		{"nothing of the mail", with(func(c *deploy.Config) {
			c.PagesURL, c.MailFrom, c.SMTPHost, c.SMTPUsername, c.SMTPPasswordSecret, c.LinkSecret = "", "", "", "", "", ""
		}), []string{"JIT_PAGES_URL", "JIT_MAIL_FROM", "JIT_SMTP_HOST", "JIT_LINK_SECRET"}},
		{"a username without the password secret", with(func(c *deploy.Config) { c.SMTPPasswordSecret = "" }), []string{"JIT_SMTP_PASSWORD_SECRET is required with JIT_SMTP_USERNAME"}},
		{"a password secret without the username", with(func(c *deploy.Config) { c.SMTPUsername = "" }), []string{"JIT_SMTP_PASSWORD_SECRET is set without JIT_SMTP_USERNAME"}},
		{"http pages", with(func(c *deploy.Config) { c.PagesURL = "http://approval.example.com" }), []string{"JIT_PAGES_URL", `"http://approval.example.com"`}},
		{"pages with a path", with(func(c *deploy.Config) { c.PagesURL = "https://example.com/approvals" }), []string{"JIT_PAGES_URL"}},
		{"pages with a trailing slash", with(func(c *deploy.Config) { c.PagesURL = "https://example.com/" }), []string{"JIT_PAGES_URL"}},
		{"the host with its port", with(func(c *deploy.Config) { c.SMTPHost = "smtp.example.com:587" }), []string{"JIT_SMTP_HOST", "JIT_SMTP_PORT"}},
		{"a port that is no number", with(func(c *deploy.Config) { c.SMTPPort = "submission" }), []string{"JIT_SMTP_PORT"}},
		{"plaintext", with(func(c *deploy.Config) { c.SMTPSecurity = "none" }), []string{"JIT_SMTP_SECURITY"}},
		{"the password secret without a version", with(func(c *deploy.Config) { c.SMTPPasswordSecret = "projects/p/secrets/smtp" }), []string{"JIT_SMTP_PASSWORD_SECRET must be a Secret Manager version"}},
		{"the link secret with a version", with(func(c *deploy.Config) { c.LinkSecret = "projects/p/secrets/links/versions/1" }), []string{"JIT_LINK_SECRET"}},
		{"a sender that is no address", with(func(c *deploy.Config) { c.MailFrom = "JIT <jit@example.com>" }), []string{"JIT_MAIL_FROM"}},
	} {
		for _, target := range []string{"approval", "approvalEvents", "approvalNotify"} {
			t.Run(target+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				err := tc.cfg.ValidateFor(target)
				if tc.want == nil {
					if err != nil {
						t.Fatalf("ValidateFor(%q) = %v", target, err)
					}
					return
				}
				if err == nil {
					t.Fatalf("ValidateFor(%q) = nil, want %s named", target, tc.want)
				}
				for _, w := range append([]string{"the " + target + " function"}, tc.want...) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("ValidateFor(%q) = %v, missing %s", target, err, w)
					}
				}
			})
		}
	}
}

// Only the approval function needs the mail settings.
func TestValidateForOthersNeedNoMail(t *testing.T) {
	t.Parallel()
	cfg := deploy.Config{
		Project: "p", Policy: "gs://b/o", Workflow: "projects/p/locations/l/workflows/w",
		IAPAudiences: []string{"/projects/1/locations/l/services/intake"},
	}
	for _, target := range []string{"intake", "intakeRequests"} {
		if err := cfg.ValidateFor(target); err != nil {
			t.Errorf("ValidateFor(%q) = %v", target, err)
		}
	}
}
