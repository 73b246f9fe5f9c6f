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
	for _, tc := range []struct {
		target, method, want string
		headers              map[string]string
		code                 int
	}{
		{"intake", "GET", "credentials", nil, http.StatusServiceUnavailable},
		{"approval", "POST", "credentials", nil, http.StatusServiceUnavailable},
		{"sweep", "POST", "credentials", nil, http.StatusServiceUnavailable},
		{"revokeTask", "POST", "credentials", nil, http.StatusServiceUnavailable},
		{"grant", "POST", "", map[string]string{"ce-specversion": "1.0", "ce-type": "google.cloud.pubsub.topic.v1.messagePublished", "ce-source": "//pubsub.googleapis.com/projects/p/topics/t", "ce-id": "1", "Content-Type": "application/json"}, http.StatusInternalServerError},
		{"revoke", "POST", "", map[string]string{"ce-specversion": "1.0", "ce-type": "google.cloud.pubsub.topic.v1.messagePublished", "ce-source": "//pubsub.googleapis.com/projects/p/topics/t", "ce-id": "1", "Content-Type": "application/json"}, http.StatusInternalServerError},
		{"intakeRequests", "POST", "", map[string]string{"ce-specversion": "1.0", "ce-type": "google.cloud.pubsub.topic.v1.messagePublished", "ce-source": "//pubsub.googleapis.com/projects/p/topics/t", "ce-id": "1", "Content-Type": "application/json"}, http.StatusInternalServerError},
		{"approvalEvents", "POST", "", map[string]string{"ce-specversion": "1.0", "ce-type": "google.cloud.pubsub.topic.v1.messagePublished", "ce-source": "//pubsub.googleapis.com/projects/p/topics/t", "ce-id": "1", "Content-Type": "application/json"}, http.StatusInternalServerError},
	} {
		t.Run(tc.target, func(t *testing.T) {
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
				req, _ := http.NewRequest(tc.method, "http://"+addr+"/", strings.NewReader(`{"message":{"data":"e30=","messageId":"1"},"subscription":"projects/p/subscriptions/s"}`))
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
func configured(t *testing.T) []string {
	return []string{
		"JIT_PROJECT=p", "JIT_POLICY=gs://b/policy.yaml",
		"JIT_WORKFLOW=projects/p/locations/europe-west1/workflows/grant-lifecycle",
		"JIT_REVOKE_QUEUE=projects/p/locations/europe-west1/queues/revocations",
		"JIT_REVOKE_URL=https://revoke-task.example.run.app",
		"JIT_TASKS_SERVICE_ACCOUNT=jit-tasks@p.iam.gserviceaccount.com",
		"JIT_IAP_AUDIENCES=/projects/1/locations/europe-west1/services/intake",
		"JIT_SWEEP_URL=https://sweep.example.run.app",
		"JIT_SCHEDULER_SERVICE_ACCOUNT=jit-scheduler@p.iam.gserviceaccount.com",
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
