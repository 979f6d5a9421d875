package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/betterkey/backend/adapters/apple/applesim"
	"github.com/betterkey/backend/adapters/sessiontoken"
	"github.com/betterkey/backend/adapters/smartcar/smartcarsim"
	"github.com/betterkey/backend/cmd/betterkeyd/config"
)

// adminToken authorises the harness's Connect calls on the servers it starts.
const adminToken = "load-harness-admin-token-0123456789abcdef"

// audience is the app's bundle id, the audience the simulator's identity tokens carry.
const audience = "com.betterkey.app"

// sims are the Apple and Smartcar simulators, served by the harness on loopback so the server
// under test is the production binary and its CPU and memory are its own.
type sims struct {
	apple           *applesim.Simulator
	smartcar        *smartcarsim.Simulator
	appleURL, scURL string
	appleSrv, scSrv *httptest.Server
	managementToken string
	redirectURI     string
	// cars are Smartcar's ids of the consenting account's vehicles: every seeded user links them.
	cars []string
}

func startSims(redirectURI string) (*sims, error) {
	a, err := applesim.New(applesim.Options{DefaultAudience: audience})
	if err != nil {
		return nil, err
	}
	sc, err := smartcarsim.New(smartcarsim.Options{
		ClientID: config.DevSmartcarClientID, ClientSecret: config.DevSmartcarClientSecret,
		RedirectURIs: []string{redirectURI}, ManagementToken: config.DevSmartcarManagementToken,
	})
	if err != nil {
		a.Close()
		return nil, err
	}
	owner := sc.CreateUser(smartcarsim.DefaultFleet()...)
	if err := sc.SetConsentUser(owner.ID); err != nil {
		a.Close()
		sc.Close()
		return nil, err
	}
	s := &sims{cars: owner.VehicleIDs, apple: a, smartcar: sc, appleSrv: httptest.NewServer(a.Handler()), scSrv: httptest.NewServer(sc.Handler()),
		managementToken: config.DevSmartcarManagementToken, redirectURI: redirectURI}
	s.appleURL, s.scURL = s.appleSrv.URL, s.scSrv.URL
	return s, nil
}

func (s *sims) close() {
	s.apple.Close()
	s.smartcar.Close()
	s.appleSrv.Close()
	s.scSrv.Close()
}

// database is a PostgreSQL database of the run's own, dropped at the end.
type database struct {
	admin *url.URL
	name  string
	url   string
}

func createDatabase(ctx context.Context, adminURL string) (*database, error) {
	u, err := url.Parse(adminURL)
	if err != nil {
		return nil, fmt.Errorf("database url: %w", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	d := &database{admin: u, name: "bk_load_" + hex.EncodeToString(b)}
	if err := d.exec(ctx, "CREATE DATABASE "+pgx.Identifier{d.name}.Sanitize()); err != nil {
		return nil, fmt.Errorf("PostgreSQL at %s: %w", u.Redacted(), err)
	}
	own := *u
	own.Path = "/" + d.name
	d.url = own.String()
	return d, nil
}

func (d *database) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, d.admin.String())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

func (d *database) drop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{d.name}.Sanitize()+" WITH (FORCE)"); err != nil {
		fmt.Fprintf(os.Stderr, "load: drop database %s: %v\n", d.name, err)
	}
}

// buildServer compiles the production betterkeyd (no simulators linked in) into dir.
func buildServer(dir string) (string, error) {
	bin := filepath.Join(dir, "betterkeyd")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/betterkeyd")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/betterkeyd (run the harness from the repository root): %w", err)
	}
	return bin, nil
}

// freeAddr reserves a loopback port for a server whose address must be known before it starts.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// replica is one server process.
type replica struct {
	base, admin string
	cmd         *exec.Cmd
	logPath     string
	exited      chan error
}

// serverVars is the environment of a server process on the harness's simulators and database:
// development (plain HTTP on loopback), logs at info, the command limits lifted because the
// scenarios measure the path a command takes, not the per-user rate limit.
func serverVars(s *sims, db, addr, adminAddr, keyring, signingKey string, extra map[string]string) map[string]string {
	v := map[string]string{
		"BETTERKEY_ENV":                      "development",
		"BETTERKEY_HTTP_ADDR":                addr,
		"BETTERKEY_ADMIN_ADDR":               adminAddr,
		"BETTERKEY_DATABASE_URL":             db,
		"BETTERKEY_SIMULATORS":               "false",
		"BETTERKEY_KEYRING_FILE":             keyring,
		"BETTERKEY_APPLE_JWKS_URL":           s.appleURL + "/auth/keys",
		"BETTERKEY_APPLE_TOKEN_URL":          s.appleURL + "/auth/token",
		"BETTERKEY_APPLE_AUDIENCES":          audience,
		"BETTERKEY_SESSION_SIGNING_KEY":      signingKey,
		"BETTERKEY_ADMIN_TOKENS":             adminToken,
		"BETTERKEY_SMARTCAR_CONNECT_URL":     s.scURL,
		"BETTERKEY_SMARTCAR_AUTH_URL":        s.scURL,
		"BETTERKEY_SMARTCAR_API_URL":         s.scURL,
		"BETTERKEY_SMARTCAR_CLIENT_ID":       config.DevSmartcarClientID,
		"BETTERKEY_SMARTCAR_CLIENT_SECRET":   config.DevSmartcarClientSecret,
		"BETTERKEY_SMARTCAR_REDIRECT_URI":    s.redirectURI,
		"BETTERKEY_SMARTCAR_WEBHOOK_SECRETS": s.managementToken,
		"BETTERKEY_APP_RETURN_URL":           "betterkey://vehicles/connected",
		"BETTERKEY_LOG_LEVEL":                "info",
		"BETTERKEY_LOG_FORMAT":               "json",
		"BETTERKEY_COMMAND_LOCK_LIMIT":       "100000000",
		"BETTERKEY_COMMAND_UNLOCK_LIMIT":     "100000000",
	}
	for k, val := range extra {
		v[k] = val
	}
	return v
}

// newSigningKey is the session signing key every replica of a run shares.
func newSigningKey() string { return sessiontoken.GenerateKey().Reveal() }

// startReplica starts bin with vars and waits until it is ready.
func startReplica(ctx context.Context, bin, dir string, vars map[string]string) (*replica, error) {
	r := &replica{base: "http://" + vars["BETTERKEY_HTTP_ADDR"], admin: "http://" + vars["BETTERKEY_ADMIN_ADDR"],
		exited: make(chan error, 1)}
	r.logPath = filepath.Join(dir, "betterkeyd-"+strings.ReplaceAll(vars["BETTERKEY_HTTP_ADDR"], ":", "_")+".log")
	logFile, err := os.Create(r.logPath)
	if err != nil {
		return nil, err
	}
	r.cmd = exec.Command(bin)
	r.cmd.Stdout, r.cmd.Stderr = logFile, logFile
	r.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range vars {
		r.cmd.Env = append(r.cmd.Env, k+"="+v)
	}
	if err := r.cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, err
	}
	go func() { r.exited <- r.cmd.Wait(); _ = logFile.Close() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-r.exited:
			return nil, fmt.Errorf("betterkeyd exited before it was ready (%v); its log: %s", err, r.logPath)
		case <-ctx.Done():
			r.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if res, err := http.Get(r.base + "/readyz"); err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return r, nil
			}
		}
		if time.Now().After(deadline) {
			r.stop()
			return nil, fmt.Errorf("betterkeyd not ready after 60 s; its log: %s", r.logPath)
		}
	}
}

// stop sends SIGTERM, as an orchestrator does, and waits for the process to drain and exit; it
// reports how long that took.
func (r *replica) stop() time.Duration {
	start := time.Now()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(60 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
	return time.Since(start)
}

// usage is a process's resident memory and the CPU time it has used, from /proc.
type usage struct {
	RSSBytes   int64   `json:"rss_bytes"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on every Linux
// architecture Go runs on.
const clockTicks = 100

func processUsage(pid int) (usage, error) {
	var u usage
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command name is in parentheses and may hold spaces; the fields after it are fixed.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return u, errors.New("short /proc stat")
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	u.CPUSeconds = (utime + stime) / clockTicks
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			u.RSSBytes = kb * 1024
		}
	}
	return u, sc.Err()
}

// goroutines reads go_goroutines from a server's admin /metrics.
func goroutines(adminURL string) (int, error) {
	res, err := http.Get(adminURL + "/metrics")
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return int(n), err
		}
	}
	return 0, errors.New("no go_goroutines in /metrics")
}

// served reads, from a server's admin /metrics, how many requests of route answered with status
// the request-duration histogram holds in all and within the bucket le (in seconds, as written
// in the histogram's le label).
func served(adminURL, route, status, le string) (within, total float64, err error) {
	res, err := http.Get(adminURL + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	labels := `route="` + route + `",status="` + status + `"`
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "betterkey_http_request_duration_seconds_") || !strings.Contains(line, labels) {
			continue
		}
		v, perr := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if perr != nil {
			continue
		}
		switch {
		case strings.HasPrefix(line, "betterkey_http_request_duration_seconds_count"):
			total += v
		case strings.Contains(line, `le="`+le+`"`):
			within += v
		}
	}
	return within, total, sc.Err()
}
