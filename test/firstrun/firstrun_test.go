// Package firstrun holds the newcomer's first run under test: the real binary, started as
// `go tool task run` starts it (nothing set, in an empty directory), walked through by the
// README's own commands against the mounted Apple and Smartcar simulators.
package firstrun

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// walkthrough returns the README's first-run commands as one script: the sign-in block, the
// sign-in steps again (the README says to sign in again before connecting), the connect block
// and the command block.
func walkthrough(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	start := strings.Index(s, "## First run walkthrough")
	end := strings.Index(s, "The webhook reaches `POST /v1/webhooks/smartcar`")
	if start < 0 || end < start {
		t.Fatal("README: the first-run walkthrough section is gone")
	}
	var blocks []string
	for _, part := range strings.Split(s[start:end], "```sh\n")[1:] {
		block, _, _ := strings.Cut(part, "```")
		blocks = append(blocks, block)
	}
	if len(blocks) != 3 {
		t.Fatalf("README: %d shell blocks in the walkthrough, want 3 (sign-in, connect, commands)", len(blocks))
	}
	signIn, _, ok := strings.Cut(blocks[0], "curl -s $B/v1/me -H")
	if !ok {
		t.Fatal("README: the sign-in block no longer ends its steps 1-3 before GET /v1/me")
	}
	return blocks[0] + "\n" + signIn + "\n" + blocks[1] + "\n" + blocks[2]
}

func TestREADMEFirstRun(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("the README walkthrough needs curl")
	}
	for _, addr := range []string{"127.0.0.1:8080", "127.0.0.1:8081"} {
		if ln, err := net.Listen("tcp", addr); err != nil {
			t.Fatalf("the first run listens on %s, which is taken: %v", addr, err)
		} else {
			_ = ln.Close()
		}
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "betterkeyd")
	build := exec.Command("go", "build", "-tags", "simulators", "-o", bin, "../../cmd/betterkeyd") // what `task run` builds
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	srv := exec.Command(bin)
	srv.Dir = work
	srv.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir} // nothing of BETTERKEY_* set
	srv.Stdout, srv.Stderr = &logs, &logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	defer func() {
		if srv.ProcessState == nil {
			_ = srv.Process.Kill()
		}
	}()
	ready := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !ready; time.Sleep(100 * time.Millisecond) {
		if res, err := http.Get("http://127.0.0.1:8080/readyz"); err == nil {
			ready = res.StatusCode == http.StatusOK
			_ = res.Body.Close()
		}
	}
	if !ready {
		t.Fatalf("the server did not become ready:\n%s", logs.String())
	}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	walk := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", walkthrough(t))
	walk.Dir = work
	out, err := walk.CombinedOutput()
	if err != nil {
		t.Fatalf("the README walkthrough failed: %v\n%s\nserver:\n%s", err, out, logs.String())
	}
	// What the README says each step shows.
	for _, want := range []string{
		`"is_private_email":`, `"current":true`, "204", `"code":"SESSION_REVOKED"`,
		`"make":"TESLA"`, `"source":"live"`, `"status":"succeeded"`, `"source":"command"`, `"delivered":2`,
		`"account":{`, `"commands":[`,
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("the walkthrough's output lacks %s:\n%s", want, out)
		}
	}
	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after SIGTERM the server exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the server did not stop within 30 s of SIGTERM:\n%s", logs.String())
	}
	for _, want := range []string{"drain started", "drain finished"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the server's log lacks %q", want)
		}
	}
}
