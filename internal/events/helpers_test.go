package events

import (
	"encoding/json"
	"maps"
	"testing"

	"github.com/jitpipeline/jit/schemas"
)

// schemaDoc reads the schema file of an event type.
func schemaDoc(t *testing.T, eventType string) map[string]any {
	t.Helper()
	b, err := schemas.FS.ReadFile(eventType + ".json")
	if err != nil {
		t.Fatalf("schema of %s: %v", eventType, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("schema of %s: %v", eventType, err)
	}
	return doc
}

// example returns a copy of the example payload the schema of eventType
// publishes for subscribers, with changes applied: a nil value deletes the
// key.
func example(t *testing.T, eventType string, changes map[string]any) map[string]any {
	t.Helper()
	exs, _ := schemaDoc(t, eventType)["examples"].([]any)
	if len(exs) == 0 {
		t.Fatalf("schema of %s has no example", eventType)
	}
	ex := maps.Clone(exs[0].(map[string]any))
	for k, v := range changes {
		if v == nil {
			delete(ex, k)
		} else {
			ex[k] = v
		}
	}
	return ex
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
