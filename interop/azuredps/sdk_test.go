package azuredps_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// sdk is Microsoft's DPS device SDK for Node.js, installed, and the script
// that drives it.
type sdk struct {
	node    string // the node binary
	modules string // node_modules holding the pinned SDK (NODE_PATH)
	script  string // provision.js, run from the source tree
}

// inCI reports whether the test runs in CI, where a missing tool or a
// failed install is a failure, never a skip.
func inCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// unavailable skips outside CI and fails in CI.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if inCI() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format+" (outside CI this test skips; CI fails)", args...)
}

var installMu sync.Mutex

// installSDK finds node and npm and installs the SDK with npm ci, exactly
// as package-lock.json pins it, into the user's cache directory, under a
// name made from the hash of package.json and package-lock.json: later runs
// reuse it, and a change of versions installs afresh. The install happens
// in a fresh directory renamed into place when complete, so a run that
// dies half way or a concurrent run never leaves a broken tree behind.
func installSDK(t *testing.T) *sdk {
	t.Helper()
	// Tests running in parallel install once: the second finds the first's.
	installMu.Lock()
	defer installMu.Unlock()
	node, err := exec.LookPath("node")
	if err != nil {
		unavailable(t, "node is not installed (Debian: apt-get install nodejs npm; scripts/test installs them): the Azure SDK interop test needs it")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		unavailable(t, "npm is not installed (Debian: apt-get install npm; scripts/test installs it): the Azure SDK interop test needs it")
	}
	script, err := filepath.Abs("provision.js")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	manifests := map[string][]byte{}
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		manifests[f] = b
		h.Write(b)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	parent := filepath.Join(cache, "gatehouse")
	dir := filepath.Join(parent, "azure-dps-"+hex.EncodeToString(h.Sum(nil))[:16])
	const done = ".gatehouse-installed"
	if _, err := os.Stat(filepath.Join(dir, done)); err == nil {
		now := time.Now()
		os.Chtimes(dir, now, now) // in use: not stale
		return &sdk{node: node, modules: filepath.Join(dir, "node_modules"), script: script}
	}

	if err := os.MkdirAll(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(parent, "azure-dps-install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp) // gone after a successful rename
	for f, b := range manifests {
		if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	// --ignore-scripts: nothing in the SDK needs an install script (one of
	// its dependencies has a postinstall that only prints a banner).
	cmd := exec.CommandContext(ctx, npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.WaitDelay = 5 * time.Second
	cmd.Dir = tmp
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		unavailable(t, "npm ci of the Azure DPS SDK failed: %v\n%s", err, out)
	}
	t.Logf("npm ci installed the Azure DPS SDK in %v", time.Since(start).Round(time.Millisecond))
	if err := os.WriteFile(filepath.Join(tmp, done), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another run got there first; its tree is complete (it has the
		// marker) or the rename would not have happened.
		if _, serr := os.Stat(filepath.Join(dir, done)); serr != nil {
			if !errors.Is(err, fs.ErrExist) {
				t.Fatalf("install the SDK into %s: %v", dir, err)
			}
			t.Fatalf("%s exists without %s: remove it", dir, done)
		}
	}
	// Installs of other lock files unused for a week are stale: drop them
	// (a checkout of another version may still be using a recent one).
	if old, err := filepath.Glob(filepath.Join(parent, "azure-dps-*")); err == nil {
		for _, o := range old {
			fi, err := os.Stat(o)
			if o != dir && err == nil && time.Since(fi.ModTime()) > 7*24*time.Hour {
				os.RemoveAll(o)
			}
		}
	}
	return &sdk{node: node, modules: filepath.Join(dir, "node_modules"), script: script}
}

// sdkResult is what provision.js prints: the registration state the SDK
// handed over, or the error it failed with.
type sdkResult struct {
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result"`
	Error  *sdkError       `json:"error"`
	Poll   *struct {
		OperationID string `json:"operationId"` // as the registration answered
		Answer      struct {
			OperationID       string   `json:"operationId"`
			Status            string   `json:"status"`
			RegistrationState sdkState `json:"registrationState"`
		} `json:"answer"`
	} `json:"poll"`

	State  sdkState                   // Result, decoded
	Fields map[string]json.RawMessage // Result's members, by their exact names
	Stderr string
}

// sdkState is the SDK's RegistrationResult (the DPS registrationState).
type sdkState struct {
	RegistrationID string          `json:"registrationId"`
	AssignedHub    string          `json:"assignedHub"`
	DeviceID       string          `json:"deviceId"`
	Status         string          `json:"status"`
	Substatus      string          `json:"substatus"`
	Payload        json.RawMessage `json:"payload"`
}

// sdkError is an SDK error as provision.js describes it.
type sdkError struct {
	Name       string          `json:"name"`
	Message    string          `json:"message"`
	StatusCode int             `json:"statusCode"`
	RetryAfter string          `json:"retryAfter"`
	Code       json.RawMessage `json:"code"`
	Body       struct {
		ErrorCode  int    `json:"errorCode"`
		TrackingID string `json:"trackingId"`
		Message    string `json:"message"`
	} `json:"body"`
}

// run runs provision.js with args against a DPS endpoint, trusting caFile.
func (s *sdk) run(t *testing.T, caFile string, args ...string) *sdkResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.node, append([]string{s.script}, args...)...)
	cmd.WaitDelay = 5 * time.Second // a child holding the output pipes cannot hang the test
	env := []string{"NODE_EXTRA_CA_CERTS=" + caFile, "NODE_PATH=" + s.modules}
	for _, kv := range os.Environ() {
		// The script's own settings come from args only; NODE_OPTIONS and
		// DEBUG could change what it does.
		if strings.HasPrefix(kv, "DPS_") || strings.HasPrefix(kv, "NODE_") || strings.HasPrefix(kv, "DEBUG=") {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("provision.js %q did not finish in time:\n%s%s", args, stdout.String(), stderr.String())
	}
	var r sdkResult
	if jerr := json.Unmarshal(stdout.Bytes(), &r); jerr != nil {
		t.Fatalf("provision.js %q: exit %v, output not JSON (%v):\n%s%s", args, err, jerr, stdout.String(), stderr.String())
	}
	r.Stderr = stderr.String()
	t.Logf("provision.js %s\n\t-> %s", strings.Join(args, " "), bytes.TrimSpace(stdout.Bytes()))
	if r.OK != (err == nil) {
		t.Fatalf("provision.js %q: ok=%v but exit %v:\n%s%s", args, r.OK, err, stdout.String(), stderr.String())
	}
	if r.OK {
		if err := json.Unmarshal(r.Result, &r.State); err != nil {
			t.Fatalf("registration state %s: %v", r.Result, err)
		}
		if err := json.Unmarshal(r.Result, &r.Fields); err != nil {
			t.Fatalf("registration state %s: %v", r.Result, err)
		}
	}
	return &r
}
