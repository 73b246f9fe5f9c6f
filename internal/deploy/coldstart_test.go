package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// buildpackMain is the main the Go functions-framework buildpack generates
// for a declarative root package (its template_declarative.go, written at
// functions.local/app/main.go inside the module): a blank import of the
// root package, whose init() registers the functions, then
// funcframework.Start on PORT.
const buildpackMain = `package main

import (
	"log"
	"os"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	_ "github.com/jitpipeline/jit"
)

func main() {
	port := "8080"
	if p := os.Getenv("PORT"); p != "" {
		port = p
	}
	if err := funcframework.Start(port); err != nil {
		log.Fatalf("funcframework.Start: %v\n", err)
	}
}
`

// helloMain is the reference: the smallest declarative functions-framework
// function, one HTTP function writing "ok", started the same way.
const helloMain = `package main

import (
	"log"
	"net/http"
	"os"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
)

func init() {
	functions.HTTP("hello", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
}

func main() {
	port := "8080"
	if p := os.Getenv("PORT"); p != "" {
		port = p
	}
	if err := funcframework.Start(port); err != nil {
		log.Fatalf("funcframework.Start: %v\n", err)
	}
}
`

// floorMain is helloMain linking what the functions link from outside
// the module and cannot do without: Google's client libraries (gRPC and
// REST) and cel-go, the policy's and IAM conditions' language. Its start
// is the floor of a function's, whatever the module's own code does — a
// low one: blank imports link the libraries' initialisation and what it
// reaches, while the linker drops the client methods nobody calls, which
// a function does call (its binary is 49 MB, this one 39 MB).
var floorMain = strings.Replace(helloMain, `	"github.com/GoogleCloudPlatform/functions-framework-go/functions"
`, `	"github.com/GoogleCloudPlatform/functions-framework-go/functions"

	_ "cloud.google.com/go/cloudtasks/apiv2"
	_ "cloud.google.com/go/firestore"
	_ "cloud.google.com/go/pubsub/v2"
	_ "cloud.google.com/go/resourcemanager/apiv3"
	_ "cloud.google.com/go/workflows/executions/apiv1"
	_ "github.com/google/cel-go/cel"
	_ "github.com/google/cel-go/ext"
	_ "google.golang.org/api/cloudidentity/v1"
	_ "google.golang.org/api/secretmanager/v1"
	_ "google.golang.org/api/storage/v1"
	_ "google.golang.org/api/transport/http"
`, 1)

// BenchmarkTableColdStart compares a deployed function's cold start with a
// hello-world functions-framework function's (issue 14, item 5): the wall
// time from exec to the first HTTP answer on its port, and the peak
// resident memory (VmHWM) right after that answer. Both binaries are built
// once with go build, the function's from the main the buildpack generates,
// each inside this module through an overlay (the tree is not written), so
// both link the same functions-framework. Starts alternate between the
// function and the reference, so load from elsewhere on the machine falls
// on both. Run it with -benchtime=1x: one iteration is coldStarts starts
// of each.
//
// It also starts floorMain, the reference with the libraries the
// functions link, and reports "floor-start-ratio" and "floor-mem-ratio"
// against hello: what no change to the module's own code can go below.
//
// The probe is GET /robots.txt: any answer counts. The functions build
// their clients lazily, so for an HTTP function this is the first
// invocation, which fails fast without credentials (configured() points
// them at a missing file, as TestFunctionsFramework does); a CloudEvent
// function refuses a GET before calling the function.
func BenchmarkTableColdStart(b *testing.B) {
	if testing.Short() {
		b.Skip("builds and starts binaries; skipped with -short")
	}
	dir := b.TempDir()
	hello := buildMain(b, dir, "hello", helloMain)
	function := buildMain(b, dir, "function", buildpackMain)
	floor := buildMain(b, dir, "floor", floorMain)
	const coldStarts = 10
	env := append(cleanEnv(), configured(b)...)
	for _, target := range []string{"intake", "approval", "grant", "revoke"} {
		b.Run("function="+target, func(b *testing.B) {
			var start, ref, floorStart, mem, refMem, floorMem []float64
			for range b.N {
				for range coldStarts {
					d, kib := coldStart(b, hello, env, "hello")
					ref, refMem = append(ref, d), append(refMem, kib)
					d, kib = coldStart(b, function, env, target)
					start, mem = append(start, d), append(mem, kib)
					d, kib = coldStart(b, floor, env, "hello")
					floorStart, floorMem = append(floorStart, d), append(floorMem, kib)
				}
			}
			b.ReportMetric(median(floorStart)/median(ref), "floor-start-ratio")
			b.ReportMetric(median(floorMem)/median(refMem), "floor-mem-ratio")
			b.ReportMetric(median(start)/median(ref), "start-ratio")
			b.ReportMetric(median(mem)/median(refMem), "mem-ratio")
			b.ReportMetric(median(start), "start-ms")
			b.ReportMetric(median(ref), "ref-start-ms")
			b.ReportMetric(median(mem)/1024, "peak-MiB")
			b.ReportMetric(median(refMem)/1024, "ref-peak-MiB")
			b.ReportMetric(0, "ns/op") // the wall time of the loop is not the figure
		})
	}
}

// buildMain builds src as the main package functions.local/<name> of this
// module, without writing into the tree: go build's -overlay adds the file.
func buildMain(b *testing.B, dir, name, src string) string {
	b.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		b.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	mainGo := filepath.Join(dir, name+".go")
	if err := os.WriteFile(mainGo, []byte(src), 0o600); err != nil {
		b.Fatal(err)
	}
	pkg := filepath.Join(root, "functions.local", name)
	overlay, err := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(pkg, "main.go"): mainGo}})
	if err != nil {
		b.Fatal(err)
	}
	overlayFile := filepath.Join(dir, name+"-overlay.json")
	if err := os.WriteFile(overlayFile, overlay, 0o600); err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-overlay="+overlayFile, "-o", bin, "./functions.local/"+name)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build %s: %v\n%s", name, err, out)
	}
	return bin
}

// coldStart starts bin serving target on a free port and returns the
// milliseconds from exec to its first HTTP answer and its peak resident
// set in KiB, read after that answer, before it is killed.
func coldStart(b *testing.B, bin string, env []string, target string) (ms, peakKiB float64) {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(slices.Clone(env), "PORT="+port, "FUNCTION_TARGET="+target)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	client := &http.Client{Timeout: time.Second}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	for deadline := begin.Add(20 * time.Second); ; time.Sleep(time.Millisecond) {
		resp, err := client.Get("http://127.0.0.1:" + port + "/robots.txt")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s (%s) did not answer: %v\n%s", filepath.Base(bin), target, err, stderr.String())
		}
	}
	ms = float64(time.Since(begin).Microseconds()) / 1000
	kib, err := vmHWM(cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	return ms, kib
}

// vmHWM is the peak resident set size of process pid, in KiB.
func vmHWM(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("failed to read the peak memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM %q: %w", v, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}
