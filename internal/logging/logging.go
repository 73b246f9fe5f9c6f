// Package logging builds the slog loggers of the project: one JSON object per
// line with the field names Cloud Logging lifts into the LogEntry
// (docs/google-cloud.md §10), so the same output is structured on Google Cloud and
// readable locally.
package logging

import (
	"io"
	"log/slog"
	"strings"
)

// Cloud Logging's special JSON keys (docs/google-cloud.md §10).
const (
	KeySeverity       = "severity"
	KeyMessage        = "message"
	KeyTime           = "time"
	KeySourceLocation = "logging.googleapis.com/sourceLocation"
	KeyLabels         = "logging.googleapis.com/labels"
	KeyTrace          = "logging.googleapis.com/trace"
	KeySpanID         = "logging.googleapis.com/spanId"
)

// LevelNotice sits between Info and Warn, for Cloud Logging's NOTICE
// (audit lines use it).
const LevelNotice = slog.Level(2)

// New returns a JSON logger writing to w at the given minimum level.
func New(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		AddSource:   true,
		Level:       level,
		ReplaceAttr: replace,
	}))
}

// replace renames slog's built-in keys to Cloud Logging's.
func replace(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.LevelKey:
		lvl, _ := a.Value.Any().(slog.Level)
		return slog.String(KeySeverity, Severity(lvl))
	case slog.MessageKey:
		a.Key = KeyMessage
	case slog.TimeKey:
		a.Key = KeyTime
	case slog.SourceKey:
		if src, ok := a.Value.Any().(*slog.Source); ok {
			return slog.Group(KeySourceLocation,
				slog.String("file", src.File),
				slog.Int("line", src.Line),
				slog.String("function", src.Function))
		}
	}
	return a
}

// Severity maps a slog level to Cloud Logging's LogSeverity names.
func Severity(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return "DEBUG"
	case l < LevelNotice:
		return "INFO"
	case l < slog.LevelWarn:
		return "NOTICE"
	case l < slog.LevelError:
		return "WARNING"
	case l < slog.LevelError+4:
		return "ERROR"
	default:
		return "CRITICAL"
	}
}

// ParseLevel reads a level name as written in flags and environment
// variables ("debug", "info", "warning", "error"); unknown names give Info.
func ParseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "notice":
		return LevelNotice
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}
