package postgres

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"
)

const spanKey = "betterkey:span"

// registerTracing opens a span around every statement GORM runs, named by the operation and the
// table. The SQL text and its bound values stay out: they hold token hashes and personal data.
func registerTracing(g *gorm.DB, tp trace.TracerProvider) error {
	tracer := tp.Tracer("github.com/betterkey/backend/adapters/postgres")
	before := func(op string) func(*gorm.DB) {
		return func(db *gorm.DB) {
			ctx, span := tracer.Start(db.Statement.Context, "db."+op, trace.WithSpanKind(trace.SpanKindClient),
				trace.WithAttributes(attribute.String("db.system.name", g.Name()), attribute.String("db.operation.name", op)))
			db.Statement.Context = ctx
			db.InstanceSet(spanKey, span)
		}
	}
	after := func(db *gorm.DB) {
		v, ok := db.InstanceGet(spanKey)
		if !ok {
			return
		}
		span := v.(trace.Span)
		if db.Statement.Table != "" {
			span.SetAttributes(attribute.String("db.collection.name", db.Statement.Table))
		}
		if db.Error != nil && db.Error != gorm.ErrRecordNotFound {
			span.SetStatus(codes.Error, "statement failed")
		}
		span.End()
	}
	cb := g.Callback()
	for _, err := range []error{
		cb.Create().Before("gorm:create").Register("betterkey:trace_create_start", before("insert")),
		cb.Create().After("gorm:create").Register("betterkey:trace_create_end", after),
		cb.Query().Before("gorm:query").Register("betterkey:trace_query_start", before("select")),
		cb.Query().After("gorm:query").Register("betterkey:trace_query_end", after),
		cb.Update().Before("gorm:update").Register("betterkey:trace_update_start", before("update")),
		cb.Update().After("gorm:update").Register("betterkey:trace_update_end", after),
		cb.Delete().Before("gorm:delete").Register("betterkey:trace_delete_start", before("delete")),
		cb.Delete().After("gorm:delete").Register("betterkey:trace_delete_end", after),
		cb.Row().Before("gorm:row").Register("betterkey:trace_row_start", before("query")),
		cb.Row().After("gorm:row").Register("betterkey:trace_row_end", after),
		cb.Raw().Before("gorm:raw").Register("betterkey:trace_raw_start", before("exec")),
		cb.Raw().After("gorm:raw").Register("betterkey:trace_raw_end", after),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}
