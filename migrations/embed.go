// Package migrations holds the plain, numbered SQL migrations of the BetterKey schema, one set per
// database dialect, embedded so that the binary can migrate without the source tree. They are
// applied with goose by the storage adapter's Migrate and never by GORM AutoMigrate: the SQL here
// is the schema's single source of truth, reviewable line by line.
package migrations

import (
	"embed"
	"io/fs"
)

// files holds both sets; it is only read through the functions below.
//
//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// Postgres returns the PostgreSQL migrations (production and the test suite) with the .sql files at
// the root, the layout goose expects.
func Postgres() fs.FS { return sub("postgres") }

// SQLite returns the migrations for the local file database used in development and on a first
// run, with the .sql files at the root.
func SQLite() fs.FS { return sub("sqlite") }

// All returns both sets under their directory names, for tools that list or lint every migration.
func All() embed.FS { return files }

// sub cannot fail for the constant, valid directory names above; should fs.Sub ever fail, an empty
// file system makes the migration run report that it found no migrations instead of panicking.
func sub(dir string) fs.FS {
	f, err := fs.Sub(files, dir)
	if err != nil {
		return embed.FS{}
	}
	return f
}
