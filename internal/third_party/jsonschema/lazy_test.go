package jsonschema

import (
	"strings"
	"sync"
	"testing"
)

// The one change of this copy: the drafts' metaschemas are compiled on
// the first Compiler, not in init(). Schemas are still checked against
// them — a schema breaking its draft's metaschema does not compile — and
// the first compilers may be made from many goroutines at once (-race).
func TestMetaschemasLoadOnFirstCompiler(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, schema string
		wantErr      string // "" compiles
	}{
		{"valid 2020-12", `{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "required": ["id"]}`, ""},
		{"valid draft-07", `{"$schema": "http://json-schema.org/draft-07/schema#", "type": "string"}`, ""},
		{"type is not a type", `{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": 12}`, "type"},
		{"minLength is negative", `{"$schema": "https://json-schema.org/draft/2020-12/schema", "minLength": -1}`, "minLength"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					doc, err := UnmarshalJSON(strings.NewReader(tc.schema))
					if err != nil {
						t.Error(err)
						return
					}
					c := NewCompiler()
					if err := c.AddResource("mem:///schema.json", doc); err != nil {
						t.Error(err)
						return
					}
					_, err = c.Compile("mem:///schema.json")
					switch {
					case tc.wantErr == "" && err != nil:
						t.Errorf("Compile: %v", err)
					case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
						t.Errorf("Compile = %v, want an error naming %s", err, tc.wantErr)
					}
				})
			}
			wg.Wait()
			if Draft2020.sch == nil || Draft2020.allVocabs["core"] == nil {
				t.Error("the 2020-12 metaschemas were not loaded by NewCompiler")
			}
		})
	}
}
