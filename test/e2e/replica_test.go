package e2e

import (
	"errors"

	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// process is a server replica running as a process of its own (see TestMain).
type process struct {
	t    testing.TB
	name string
	addr string
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
	err  error // the process's exit, once done is closed
}

// startProcess starts a replica on in at a fresh address with the test configuration changed by
// opts, and waits until it is ready.
func startProcess(t testing.TB, name string, in *infra, opts ...option) *process {
	t.Helper()
	addr := freeAddr(t)
	vars := serverVars(in, addr, opts...)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BETTERKEY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, replicaEnv+"=1")
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &process{t: t, name: name, addr: addr, cmd: cmd, logs: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s logs:\n%s", name, tail(p.logs.String(), 40))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("%s exited at start: %v\n%s", name, p.err, tail(p.logs.String(), 40))
		default:
		}
		if res, err := http.Get(p.url() + "/readyz"); err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 60 s:\n%s", name, tail(p.logs.String(), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *process) url() string { return "http://" + p.addr }

func (p *process) signal(s os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		p.t.Fatal(err)
	}
}

// wait waits up to d for the process to exit and returns its exit code.
func (p *process) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.t.Fatalf("%s still running after %s", p.name, d)
	}
	if p.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	p.t.Fatal(p.err)
	return -1
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// The real process drains on SIGTERM and exits 0 once done; a second signal during the drain
// exits at once, with 1, without waiting out the delay.
func TestSignals(t *testing.T) {
	in := newInfra(t, "http://127.0.0.1:1/v1/smartcar/callback")
	delay := func(d string) option { return func(v map[string]string) { v["BETTERKEY_SHUTDOWN_DELAY"] = d } }

	p := startProcess(t, "drained", in, delay("200ms"))
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("after one SIGTERM: exit %d, want 0\n%s", code, p.logs.String())
	}
	for _, want := range []string{"drain started", "drain finished"} {
		if !strings.Contains(p.logs.String(), want) {
			t.Errorf("logs lack %q", want)
		}
	}

	q := startProcess(t, "interrupted", in, delay("1m"))
	q.signal(syscall.SIGTERM)
	waitFor(t, "the drain to start", func() bool { return strings.Contains(q.logs.String(), "drain started") })
	q.signal(syscall.SIGINT)
	if code := q.wait(30 * time.Second); code != 1 {
		t.Fatalf("after a second signal: exit %d, want 1 (a drain of 1m cut short)", code)
	}
	if !strings.Contains(q.logs.String(), "second signal") {
		t.Error("logs lack the second signal")
	}
}
