package migrations

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// grandfathered are findings in migrations applied before the rule existed; an applied
// migration is never edited, so they stay, each with why it was harmless then.
var grandfathered = map[string]string{
	"0004_webhooks.sql: CREATE INDEX without CONCURRENTLY on vehicles":              "applied before the first deploy with data",
	"0006_account_deletions.sql: ADD CONSTRAINT without NOT VALID on webhook_inbox": "applied before the first deploy with data",
}

var (
	createTable  = regexp.MustCompile(`(?i)^CREATE TABLE (?:IF NOT EXISTS )?(\w+)`)
	createIndex  = regexp.MustCompile(`(?i)^CREATE (?:UNIQUE )?INDEX (CONCURRENTLY )?(?:IF NOT EXISTS )?\w* ?ON (?:ONLY )?(\w+)`)
	alterTable   = regexp.MustCompile(`(?i)^ALTER TABLE (?:IF EXISTS )?(?:ONLY )?(\w+)\s+(.*)$`)
	volatileCall = regexp.MustCompile(`(?i)\b(random|gen_random_uuid|uuid_generate_v[14]|clock_timestamp|timeofday|nextval)\s*\(`)
)

// blockingDDL lists the statements of a migration's Up section that would lock or rewrite a
// table that already holds data while the live release queries it: an index built without
// CONCURRENTLY, a column added with a volatile default (a rewrite), a column type change (a
// rewrite), SET NOT NULL (a full scan under an exclusive lock), a constraint or foreign key
// validated at once instead of NOT VALID then VALIDATE, and explicit LOCK, VACUUM FULL or CLUSTER.
// Tables the same migration creates are empty, so anything goes for them.
func blockingDDL(name, src string) []string {
	up, _, _ := strings.Cut(src, "-- +goose Down")
	noTx := strings.Contains(up, "-- +goose NO TRANSACTION")
	var lines []string
	for line := range strings.SplitSeq(up, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		lines = append(lines, line)
	}
	created := map[string]bool{}
	var out []string
	seen := map[string]int{}
	add := func(f string) {
		key := name + ": " + f
		if seen[key]++; seen[key] > 1 {
			key += " (again)"
		}
		out = append(out, key)
	}
	for stmt := range strings.SplitSeq(strings.Join(lines, "\n"), ";") {
		stmt = strings.Join(strings.Fields(stmt), " ")
		if stmt == "" {
			continue
		}
		upper := strings.ToUpper(stmt)
		if m := createTable.FindStringSubmatch(stmt); m != nil {
			created[strings.ToLower(m[1])] = true
			continue
		}
		if m := createIndex.FindStringSubmatch(stmt); m != nil {
			table := strings.ToLower(m[2])
			switch {
			case m[1] != "" && !noTx:
				add("CREATE INDEX CONCURRENTLY needs -- +goose NO TRANSACTION")
			case m[1] == "" && !created[table]:
				add("CREATE INDEX without CONCURRENTLY on " + table)
			}
			continue
		}
		for _, bad := range []string{"LOCK TABLE", "VACUUM FULL", "CLUSTER "} {
			if strings.HasPrefix(upper, bad) {
				add(bad + " takes an exclusive lock")
			}
		}
		m := alterTable.FindStringSubmatch(stmt)
		if m == nil || created[strings.ToLower(m[1])] {
			continue
		}
		table, action := strings.ToLower(m[1]), strings.ToUpper(m[2])
		switch {
		case strings.Contains(action, "ADD COLUMN") && volatileCall.MatchString(action):
			add("ADD COLUMN with a volatile default on " + table)
		case strings.Contains(action, "ADD COLUMN") && strings.Contains(action, "NOT NULL") && !strings.Contains(action, "DEFAULT"):
			add("ADD COLUMN NOT NULL without a default on " + table)
		case strings.Contains(action, " TYPE ") && strings.Contains(action, "ALTER COLUMN"):
			add("ALTER COLUMN TYPE rewrites " + table)
		case strings.Contains(action, "SET NOT NULL"):
			add("SET NOT NULL scans " + table + " under an exclusive lock")
		case (strings.Contains(action, "ADD CONSTRAINT") || strings.Contains(action, "REFERENCES")) &&
			!strings.Contains(action, "NOT VALID") && !strings.Contains(action, "UNIQUE USING INDEX"):
			add("ADD CONSTRAINT without NOT VALID on " + table)
		}
	}
	return out
}

// Every PostgreSQL migration can run while the previous release serves: none takes a long lock
// on or rewrites a table that already exists (expand/contract, see the README).
func TestMigrationsDoNotBlockExistingTables(t *testing.T) {
	names, err := fs.Glob(Postgres(), "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, n := range names {
		src, err := fs.ReadFile(Postgres(), n)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range blockingDDL(n, string(src)) {
			found[f] = true
			if _, ok := grandfathered[f]; !ok {
				t.Errorf("%s", f)
			}
		}
	}
	for f := range grandfathered {
		if !found[f] {
			t.Errorf("grandfathered finding no longer found, drop it: %s", f)
		}
	}
}

// The check finds what it must: each of these would block a live table.
func TestBlockingDDLIsFound(t *testing.T) {
	const head = "-- +goose Up\n"
	for src, want := range map[string]string{
		"CREATE INDEX users_email_idx ON users (email);":                                  "CREATE INDEX without CONCURRENTLY on users",
		"CREATE UNIQUE INDEX CONCURRENTLY users_x ON users (email);":                      "CREATE INDEX CONCURRENTLY needs -- +goose NO TRANSACTION",
		"ALTER TABLE users ADD COLUMN token uuid NOT NULL DEFAULT gen_random_uuid();":     "ADD COLUMN with a volatile default on users",
		"ALTER TABLE users ADD COLUMN n integer NOT NULL;":                                "ADD COLUMN NOT NULL without a default on users",
		"ALTER TABLE commands ALTER COLUMN device TYPE varchar(40);":                      "ALTER COLUMN TYPE rewrites commands",
		"ALTER TABLE users ALTER COLUMN email SET NOT NULL;":                              "SET NOT NULL scans users under an exclusive lock",
		"ALTER TABLE sessions ADD CONSTRAINT s_len CHECK (char_length(device_name) < 9);": "ADD CONSTRAINT without NOT VALID on sessions",
		"ALTER TABLE sessions ADD COLUMN car uuid REFERENCES vehicles (id);":              "ADD CONSTRAINT without NOT VALID on sessions",
		"LOCK TABLE users IN ACCESS EXCLUSIVE MODE;":                                      "LOCK TABLE takes an exclusive lock",
	} {
		got := blockingDDL("x.sql", head+src)
		if len(got) != 1 || got[0] != "x.sql: "+want {
			t.Errorf("%s\n got %v\nwant %s", src, got, want)
		}
	}
	for _, ok := range []string{
		"CREATE TABLE t (id uuid PRIMARY KEY); CREATE INDEX t_idx ON t (id); ALTER TABLE t ADD CONSTRAINT c CHECK (true);",
		"ALTER TABLE users ADD COLUMN deletion_requested_at timestamptz;",
		"ALTER TABLE users ADD COLUMN n integer NOT NULL DEFAULT 0;",
		"ALTER TABLE sessions ADD CONSTRAINT s_len CHECK (char_length(device_name) < 99) NOT VALID;",
		"-- +goose NO TRANSACTION\nCREATE INDEX CONCURRENTLY users_email_idx ON users (email);",
		"ALTER TABLE users ADD COLUMN x int;\n-- +goose Down\nCREATE INDEX i ON users (x);",
	} {
		if got := blockingDDL("x.sql", head+ok); len(got) > 0 {
			t.Errorf("%s: flagged %v", ok, got)
		}
	}
}
