package main

import (
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/betterkey/backend/domain"
)

// seedSecrets stores n connections whose token sets f's cipher seals under its latest version.
func (f fixture) seedSecrets(t *testing.T, n int) {
	t.Helper()
	now := time.Now()
	for i := range n {
		c := domain.Connection{
			ID: domain.NewConnectionID(), UserID: f.user.ID, SmartcarUserID: "sc-user-" + strconv.Itoa(i),
			Status: domain.ConnectionActive, Scopes: domain.DefaultConnectScopes(),
			AccessExpiresAt: now.Add(time.Hour), RefreshExpiresAt: now.Add(24 * time.Hour), CreatedAt: now, UpdatedAt: now,
		}
		sealed, err := f.cipher.Seal(t.Context(), c.TokenBinding(), domain.NewSecret("token-set-"+strconv.Itoa(i)))
		if err != nil {
			t.Fatalf("seal: %v", err)
		}
		c.Tokens = sealed
		if _, err := f.conns.SaveGrant(t.Context(), c, []domain.Vehicle{{ID: domain.NewVehicleID(), SmartcarID: "sc-" + string(c.ID)}}); err != nil {
			t.Fatalf("save grant: %v", err)
		}
	}
}

// lines splits output into trimmed lines with runs of spaces collapsed, so tables compare simply.
func lines(out string) []string {
	var got []string
	for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		got = append(got, strings.Join(strings.Fields(l), " "))
	}
	return got
}

func TestKeysCommands(t *testing.T) {
	t.Setenv(tokenEnv, testToken)
	for _, protocol := range []string{"connect", "grpc", "grpcweb"} {
		t.Run(protocol, func(t *testing.T) {
			f := newFixture(t)
			f.seedSecrets(t, 5)
			steps := []struct {
				args []string
				want []string
			}{
				{[]string{"keys", "report"}, []string{
					"latest version 1, minimum decryption version 1", "VERSION STATE SECRETS", "1 latest 5",
				}},
				{[]string{"keys", "rotate"}, []string{
					"rotated: new seals use key version 2; run `keys rewrap` to move stored secrets to it",
				}},
				{[]string{"keys", "rewrap", "--batch", "2"}, []string{
					"batch 1: target v2, done 2, failed 0, skipped 0, remaining 3",
					"batch 2: target v2, done 4, failed 0, skipped 0, remaining 1",
					"batch 3: target v2, done 5, failed 0, skipped 0, remaining 0",
					"rewrap finished: target v2, done 5, failed 0, skipped 0, remaining 0",
					"latest version 2, minimum decryption version 1", "VERSION STATE SECRETS", "1 active 0", "2 latest 5",
				}},
				{[]string{"keys", "retire", "2"}, []string{
					"retired key versions below 2",
					"latest version 2, minimum decryption version 2", "VERSION STATE SECRETS", "2 latest 5",
				}},
			}
			for _, s := range steps {
				out, _, err := f.ctl(t, append([]string{"--protocol", protocol}, s.args...)...)
				if err != nil {
					t.Fatalf("%s: %v", strings.Join(s.args, " "), err)
				}
				if diff := cmp.Diff(lines(out), s.want); diff != "" {
					t.Errorf("%s (-got +want):\n%s", strings.Join(s.args, " "), diff)
				}
			}
		})
	}
}

func TestKeysRewrapJSON(t *testing.T) {
	t.Setenv(tokenEnv, testToken)
	f := newFixture(t)
	f.seedSecrets(t, 3)
	if _, _, err := f.ctl(t, "keys", "rotate"); err != nil {
		t.Fatal(err)
	}
	out, _, err := f.ctl(t, "-o", "json", "keys", "rewrap", "--batch", "2")
	if err != nil {
		t.Fatalf("keys rewrap: %v", err)
	}
	type progress struct {
		Done      string `json:"done"` // protojson writes int64 as a string
		Remaining string `json:"remaining"`
	}
	var got []string
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		var m struct {
			Progress *progress `json:"progress"`
			Summary  *struct {
				Totals progress `json:"totals"`
			} `json:"summary"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode %q: %v", out, err)
		}
		switch {
		case m.Progress != nil:
			got = append(got, "progress "+m.Progress.Done+" "+m.Progress.Remaining)
		case m.Summary != nil:
			got = append(got, "summary "+m.Summary.Totals.Done+" "+m.Summary.Totals.Remaining)
		}
	}
	if diff := cmp.Diff(got, []string{"progress 2 1", "progress 3 0", "summary 3 0"}); diff != "" {
		t.Errorf("json stream (-got +want):\n%s", diff)
	}
}

func TestKeysErrors(t *testing.T) {
	t.Setenv(tokenEnv, testToken)
	f := newFixture(t)
	f.seedSecrets(t, 1)
	if _, _, err := f.ctl(t, "keys", "rotate"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"retire in use", []string{"keys", "retire", "2"},
			"keys retire: failed_precondition: stored secrets are still sealed under a key version to retire; rewrap them first (code KEY_VERSION_IN_USE, request id ", false},
		{"retire beyond latest", []string{"keys", "retire", "9"}, "min_version: must be between 1 and the latest key version (code VALIDATION_FAILED", false},
		{"batch too large", []string{"keys", "rewrap", "--batch", "5000"}, "keys rewrap: invalid_argument: batch_size: must be between 1 and 1000", false},
		{"batch beyond int32", []string{"keys", "rewrap", "--batch", "4294967297"}, "batch_size: must be between 1 and 1000", false},
		{"retire not a number", []string{"keys", "retire", "two"}, `<min-version>: expected a valid 64 bit int but got "two"`, true},
		{"retire zero", []string{"keys", "retire", "0"}, "min-version must be a key version", true},
		{"retire without version", []string{"keys", "retire"}, `expected "<min-version>"`, true},
		{"rewrap with argument", []string{"keys", "rewrap", "now"}, "unexpected argument now", true},
		{"rewrap bad flag", []string{"keys", "rewrap", "--batch", "x"}, `--batch: expected a valid 64 bit int but got "x"`, true},
		{"report with argument", []string{"keys", "report", "x"}, "unexpected argument x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := f.ctl(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if got := errors.Is(err, errUsage); got != tt.usage {
				t.Errorf("usage error = %v, want %v", got, tt.usage)
			}
		})
	}
	if out, _, _ := f.ctl(t, "keys", "report"); !strings.Contains(out, "minimum decryption version 1") {
		t.Errorf("a refused command changed the key:\n%s", out)
	}
}

// TestKeysRewrapHasNoDefaultDeadline: the rewrap job runs until it ends unless -timeout is given,
// while every other command keeps the default deadline.
func TestKeysRewrapHasNoDefaultDeadline(t *testing.T) {
	for args, long := range map[string]bool{"keys rewrap": true, "keys rewrap --batch 10": true, "keys report": false, "keys retire 2": false} {
		p, err := parse(strings.Fields(args), io.Discard, io.Discard)
		if err != nil || p.cmd.long != long {
			t.Errorf("parse(%q) long = %v, %v; want %v", args, p.cmd.long, err, long)
		}
	}
	t.Setenv(tokenEnv, testToken)
	f := newFixture(t)
	f.seedSecrets(t, 1)
	_, _, err := f.ctl(t, "--timeout", "1ns", "keys", "rewrap")
	if err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Errorf("keys rewrap with -timeout 1ns: %v, want a deadline error", err)
	}
}
