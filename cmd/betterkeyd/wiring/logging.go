package wiring

import (
	"io"
	"log/slog"
	"strings"

	"github.com/betterkey/backend/cmd/betterkeyd/config"
)

// NewLogger returns the process logger: JSON outside development (for log pipelines), text in
// development (for people). Log lines carry step names, outcomes, lengths and request ids; the
// secret types redact themselves, so a careless attribute cannot leak a token.
func NewLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel))); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" || (cfg.LogFormat == "" && cfg.Env != config.Development) {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
