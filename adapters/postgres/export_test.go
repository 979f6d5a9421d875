package postgres

import (
	"slices"
	"sync"

	"gorm.io/gorm"
)

// Statement is one SQL statement the stores ran, with its bound values.
type Statement struct {
	SQL  string
	Vars []any
}

// Recorder collects the statements the stores run while it is on.
type Recorder struct {
	mu   sync.Mutex
	on   bool
	list []Statement
}

// Start and Stop bracket what is recorded; Statements returns it.
func (r *Recorder) Start() { r.mu.Lock(); r.on, r.list = true, nil; r.mu.Unlock() }
func (r *Recorder) Stop()  { r.mu.Lock(); r.on = false; r.mu.Unlock() }
func (r *Recorder) Statements() []Statement {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.list)
}

// RecordStatements registers callbacks after every kind of statement GORM runs on db, so a test
// can see the SQL exactly as the stores send it.
func RecordStatements(db *DB) (*Recorder, error) {
	r := &Recorder{}
	rec := func(g *gorm.DB) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.on && g.Statement.SQL.Len() > 0 {
			r.list = append(r.list, Statement{SQL: g.Statement.SQL.String(), Vars: slices.Clone(g.Statement.Vars)})
		}
	}
	cb := db.w.Callback()
	for _, err := range []error{
		cb.Create().After("gorm:create").Register("test:record_create", rec),
		cb.Query().After("gorm:query").Register("test:record_query", rec),
		cb.Update().After("gorm:update").Register("test:record_update", rec),
		cb.Delete().After("gorm:delete").Register("test:record_delete", rec),
		cb.Row().After("gorm:row").Register("test:record_row", rec),
		cb.Raw().After("gorm:raw").Register("test:record_raw", rec),
	} {
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}
