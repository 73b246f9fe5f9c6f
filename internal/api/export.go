package api

import (
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jitpipeline/jit/internal/grant"
	"github.com/jitpipeline/jit/internal/isoduration"
)

// csvHeader names the export's columns.
var csvHeader = []string{
	"id", "entitlement", "requester", "state", "requestedDuration", "justification",
	"createTime", "startTime", "endTime", "approvedBy", "deniedBy", "privileges", "revocationVerified",
}

// ServeExport answers with grants as a download in format, csv or json:
// the API's export and the pages' are the same file.
func ServeExport(w http.ResponseWriter, format string, gs []*grant.Grant) error {
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="grants.%s"`, format))
	if format == "json" {
		out := make([]GrantView, 0, len(gs))
		for _, g := range gs {
			out = append(out, View(g))
		}
		writeJSON(w, http.StatusOK, map[string]any{"grants": out})
		return nil
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	return WriteCSV(w, gs)
}

// WriteCSV writes grants as RFC 4180 CSV, one row each.
func WriteCSV(w io.Writer, gs []*grant.Grant) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for _, g := range gs {
		var approved, denied, privs []string
		for _, d := range g.Decisions {
			if d.Approved {
				approved = append(approved, d.Approver)
			} else {
				denied = append(denied, d.Approver)
			}
		}
		for _, p := range g.Privileges {
			s := p.Role + " on " + p.Resource
			if p.Condition != "" {
				s += " if " + p.Condition
			}
			privs = append(privs, s)
		}
		row := []string{
			g.ID, g.Entitlement, g.Requester, string(g.State), isoduration.Format(g.RequestedDuration), g.Justification,
			stamp(g.CreateTime), stamp(g.StartTime), stamp(g.EndTime),
			strings.Join(approved, " "), strings.Join(denied, " "), strings.Join(privs, "; "),
			strconv.FormatBool(g.RevocationVerified),
		}
		for i := range row {
			row[i] = inert(row[i])
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// inert keeps a cell from being read as a formula by a spreadsheet
// (OWASP's CSV injection advice): text people typed — a justification, a
// condition — that starts with = + - @, a tab or a carriage return gets a
// leading apostrophe.
func inert(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
