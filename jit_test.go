package jit

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// A deployed function whose required setting is missing fails at start —
// the process exits before serving — with a message naming the setting.
// The test binary of this package is the deployed package plus tests, so
// re-running it with FUNCTION_TARGET set runs the same init().
func TestMisconfiguredFunctionFailsAtStart(t *testing.T) {
	t.Parallel()
	grant := []string{
		"JIT_PROJECT=p", "JIT_POLICY=gs://b/policy.yaml",
		"JIT_WORKFLOW=projects/p/locations/europe-west1/workflows/grant-lifecycle",
		"JIT_REVOKE_QUEUE=projects/p/locations/europe-west1/queues/revocations",
		"JIT_REVOKE_URL=https://revoke-task.example.run.app",
		"JIT_TASKS_SERVICE_ACCOUNT=jit-tasks@p.iam.gserviceaccount.com",
	}
	// The approval function's settings: the common ones, IAP's audience
	// and the mail, link and pages settings.
	approval := append(slices.Clone(grant[:3]),
		"JIT_IAP_AUDIENCES=/projects/1/locations/europe-west1/services/approval",
		"JIT_PAGES_URL=https://approval.example.com", "JIT_MAIL_FROM=jit@example.com",
		"JIT_SMTP_HOST=smtp.example.com", "JIT_SMTP_USERNAME=jit",
		"JIT_SMTP_PASSWORD_SECRET=projects/p/secrets/smtp-password/versions/latest",
		"JIT_LINK_SECRET=projects/p/secrets/approval-link-key",
	)
	without := func(env []string, name string) []string {
		var out []string
		for _, kv := range env {
			if !strings.HasPrefix(kv, name+"=") {
				out = append(out, kv)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		target string
		env    []string
		want   []string // nil: starts
	}{
		{"grant configured", "grant", grant, nil},
		{"grant without the tasks queue", "grant", without(grant, "JIT_REVOKE_QUEUE"), []string{"grant", "JIT_REVOKE_QUEUE"}},
		{"revoke without the tasks identity", "revoke", without(grant, "JIT_TASKS_SERVICE_ACCOUNT"), []string{"revoke", "JIT_TASKS_SERVICE_ACCOUNT"}},
		{"intake without IAP's audience", "intake", grant, []string{"intake", "JIT_IAP_AUDIENCES"}},
		{"sweep without Cloud Scheduler's identity", "sweep", grant, []string{"sweep", "JIT_SCHEDULER_SERVICE_ACCOUNT", "JIT_SWEEP_URL"}},
		{"approval without the SMTP server and link keys", "approval", without(without(approval, "JIT_SMTP_HOST"), "JIT_LINK_SECRET"), []string{"approval", "JIT_SMTP_HOST", "JIT_LINK_SECRET"}},
		{"approvalNotify configured", "approvalNotify", approval, nil},
		{"nothing configured", "approvalEvents", nil, []string{"JIT_PROJECT", "JIT_POLICY", "JIT_WORKFLOW"}},
		{"an unknown entry point", "grnat", grant, []string{`"grnat"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
			cmd.Env = append(append(cleanEnv(), "FUNCTION_TARGET="+tc.target), tc.env...)
			out, err := cmd.CombinedOutput()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("configured %s did not start: %v\n%s", tc.target, err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("%s started without its settings:\n%s", tc.target, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output does not name %s:\n%s", w, out)
				}
			}
		})
	}
}

func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "JIT_") && !strings.HasPrefix(kv, "FUNCTION_TARGET=") {
			out = append(out, kv)
		}
	}
	return out
}
