package wfrunner

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	executionspb "cloud.google.com/go/workflows/executions/apiv1/executionspb"
	"github.com/google/go-cmp/cmp"

	"github.com/jitpipeline/jit/internal/clock"
	"github.com/jitpipeline/jit/workflows"
)

// TestGrantLifecycleWorkflow runs the deployed workflows/grant-lifecycle.yaml
// through this runner — except blocks scoped as on Google, only the
// documented sys.get_env names, the memory and duration limits — on a
// manual clock, playing the functions' part through the callback URLs. Each
// path must end by publishing its own command: a grant that reaches its end
// time publishes revoke.requested with reason "end" (the path that failed on
// Google when `reason` lived in an except block), an early end carries the
// caller's reason, an unanswered approval publishes reason "expired".
func TestGrantLifecycleWorkflow(t *testing.T) {
	t.Parallel()
	src, err := workflows.FS.ReadFile("grant-lifecycle.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const (
		approvalTopic   = "projects/" + testProject + "/topics/jit-approvals"
		activationTopic = "projects/" + testProject + "/topics/jit-activations"
		revokeTopic     = "projects/" + testProject + "/topics/jit-revocations"
	)
	cases := []struct {
		name     string
		approval bool
		// decide answers the approval callback (approval cases only);
		// empty leaves it unanswered until the window ends.
		decide string
		// early posts to the end callback before the end time; empty lets
		// the grant run to its end.
		early      string
		wantResult string
		wantLast   published
	}{
		{name: "natural end", wantResult: "revoke requested: end", wantLast: published{"dev.jitpipeline.revoke.requested.v1", "end"}},
		{name: "approved then natural end", approval: true, decide: "ACTIVATING", wantResult: "revoke requested: end", wantLast: published{"dev.jitpipeline.revoke.requested.v1", "end"}},
		{name: "withdrawn while active", early: "withdraw", wantResult: "revoke requested: withdraw", wantLast: published{"dev.jitpipeline.revoke.requested.v1", "withdraw"}},
		{name: "approval never answered", approval: true, wantResult: "EXPIRED", wantLast: published{"dev.jitpipeline.revoke.requested.v1", "expired"}},
		{name: "denied", approval: true, decide: "DENIED", wantResult: "DENIED", wantLast: published{"dev.jitpipeline.approval.requested.v1", ""}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			clk := clock.NewManual(start)
			te := newTestEnv(t, envOptions{clock: clk, env: map[string]string{
				"JIT_APPROVAL_TOPIC": "jit-approvals", "JIT_ACTIVATION_TOPIC": "jit-activations",
				"JIT_REVOKE_TOPIC": "jit-revocations", "JIT_ACTIVATION_TIMEOUT": "600",
			}})
			for _, tp := range []string{approvalTopic, activationTopic, revokeTopic} {
				te.createTopic(t, tp)
			}
			if err := te.runner.Deploy("grant-lifecycle", src); err != nil {
				t.Fatalf("Deploy: %v", err)
			}
			grantID := fmt.Sprintf("g-%d", i)
			request := map[string]any{
				"grantId": grantID, "entitlement": "demo.admin", "requester": "alice@example.com",
				"state": "REQUESTED", "approvalRequired": tc.approval,
				"approvalDeadline": start.Add(time.Hour).Format(time.RFC3339),
			}
			data, _ := json.Marshal(request)
			event := map[string]any{"data": map[string]any{"message": map[string]any{
				"data":       base64.StdEncoding.EncodeToString(data),
				"attributes": map[string]any{"ce-type": "dev.jitpipeline.grant.requested.v1"},
			}}}
			name, err := te.runner.Run(t.Context(), "grant-lifecycle", event)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			awaits := 0
			if tc.approval {
				cmd := waitCommand(ctx, t, te, approvalTopic, 1)
				awaits++
				waitAwaits(t, te.runner, name, awaits)
				if tc.decide == "" {
					clk.Advance(time.Hour + time.Second)
					finishedWith(t, te, name, tc.wantResult, tc.wantLast, revokeTopic)
					return
				}
				if code := post(t, "POST", cmd["callbackUrl"].(string), fmt.Sprintf(`{"state":%q}`, tc.decide)); code != 200 {
					t.Fatalf("approval callback = %d", code)
				}
				if tc.decide != "ACTIVATING" {
					finishedWith(t, te, name, tc.wantResult, tc.wantLast, approvalTopic)
					return
				}
			}
			cmd := waitCommand(ctx, t, te, activationTopic, 1)
			awaits++
			waitAwaits(t, te.runner, name, awaits)
			end := float64(clk.Now().Add(time.Hour).Unix())
			if code := post(t, "POST", cmd["callbackUrl"].(string), fmt.Sprintf(`{"state":"ACTIVE","endTime":%v}`, end)); code != 200 {
				t.Fatalf("activation callback = %d", code)
			}
			awaits++
			waitAwaits(t, te.runner, name, awaits)
			if tc.early != "" {
				if code := post(t, "POST", cmd["endCallbackUrl"].(string), fmt.Sprintf(`{"reason":%q}`, tc.early)); code != 200 {
					t.Fatalf("end callback = %d", code)
				}
			} else {
				// A second before the end nothing is revoked yet.
				clk.Advance(time.Hour - time.Second)
				if got := messagesOn(te, revokeTopic); len(got) != 0 {
					t.Fatalf("revoke published a second before the end: %v", got)
				}
				clk.Advance(time.Second)
			}
			cmdEnd := finishedWith(t, te, name, tc.wantResult, tc.wantLast, revokeTopic)
			if cmdEnd["callbackUrl"] != cmd["endCallbackUrl"] || cmdEnd["grantId"] != grantID {
				t.Errorf("revoke command = %v, want the end callback %v and grant %s", cmdEnd, cmd["endCallbackUrl"], grantID)
			}
		})
	}
}

// finishedWith waits for the execution to succeed with want and checks the last
// command it published, on topic; it returns that command.
func finishedWith(t *testing.T, te *testEnv, name, want string, wantLast published, topic string) map[string]any {
	t.Helper()
	got := waitDone(t, te.client, name)
	if got.GetState() != executionspb.Execution_SUCCEEDED {
		t.Fatalf("state = %v, error = %v; want SUCCEEDED", got.GetState(), got.GetError())
	}
	var result string
	if err := json.Unmarshal([]byte(got.GetResult()), &result); err != nil || result != want {
		t.Errorf("result = %s, want %q", got.GetResult(), want)
	}
	msgs := messagesOn(te, topic)
	if len(msgs) == 0 {
		t.Fatalf("nothing published on %s", topic)
	}
	last := msgs[len(msgs)-1]
	reason, _ := last.cmd["reason"].(string)
	if diff := cmp.Diff(wantLast, published{last.attrs["ce-type"], reason}); diff != "" {
		t.Errorf("last command on %s (-want +got):\n%s", topic, diff)
	}
	return last.cmd
}

// published is what a test checks of a command: its type and reason.
type published struct {
	Type   string
	Reason string
}

type command struct {
	attrs map[string]string
	cmd   map[string]any
}

func messagesOn(te *testEnv, topic string) []command {
	var out []command
	for _, m := range te.pubsub.Messages() {
		if m.Topic != topic {
			continue
		}
		var c map[string]any
		_ = json.Unmarshal(m.Data, &c)
		out = append(out, command{attrs: m.Attributes, cmd: c})
	}
	return out
}

// waitCommand waits until n commands were published on topic and returns
// the last one's data.
func waitCommand(ctx context.Context, t *testing.T, te *testEnv, topic string, n int) map[string]any {
	t.Helper()
	for {
		if msgs := messagesOn(te, topic); len(msgs) >= n {
			return msgs[n-1].cmd
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no command %d on %s", n, topic)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitAwaits waits until the execution journaled its n-th await deadline
// and is waiting on it.
func waitAwaits(t *testing.T, r *Runner, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ex := r.lookup(name)
		ex.mu.Lock()
		count, last := 0, ""
		for _, e := range ex.rec.Journal {
			if e.Kind == "await" {
				count++
			}
			last = e.Kind
		}
		ex.mu.Unlock()
		if count == n && last == "await" {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("execution %s never awaited %d times", name, n)
}
