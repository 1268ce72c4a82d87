package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Output formats of the client commands.
const (
	outputTable = "table"
	outputJSON  = "json"
)

// useColor: only on a terminal, and never with NO_COLOR (https://no-color.org)
// or TERM=dumb.
func useColor(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Colours. Every code is 5 bytes long and each painted cell ends with the
// same reset, so tabwriter (which counts bytes of escapes as width) keeps
// columns aligned when every cell of a table is painted.
const (
	colorNone   = "\x1b[39m"
	colorBold   = "\x1b[01m"
	colorRed    = "\x1b[31m"
	colorGreen  = "\x1b[32m"
	colorYellow = "\x1b[33m"
	colorReset  = "\x1b[0m"
)

// table writes aligned columns (text/tabwriter).
type table struct {
	tw    *tabwriter.Writer
	color bool
}

func newTable(w io.Writer, headers ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0), color: useColor(w)}
	cells := make([]cell, len(headers))
	for i, h := range headers {
		cells[i] = cell{text: h, color: colorBold}
	}
	t.row(cells...)
	return t
}

// cell is a table cell with an optional colour.
type cell struct {
	text, color string
}

func plain(s string) cell { return cell{text: s} }

func (t *table) row(cells ...cell) {
	parts := make([]string, len(cells))
	for i, c := range cells {
		text := strings.NewReplacer("\t", " ", "\n", " ").Replace(c.text)
		if text == "" {
			text = "-"
		}
		if t.color {
			col := c.color
			if col == "" {
				col = colorNone
			}
			text = col + text + colorReset
		}
		parts[i] = text
	}
	fmt.Fprintln(t.tw, strings.Join(parts, "\t"))
}

// strs is row with uncoloured cells.
func (t *table) strs(cells ...string) {
	cs := make([]cell, len(cells))
	for i, c := range cells {
		cs[i] = plain(c)
	}
	t.row(cs...)
}

func (t *table) flush() error { return t.tw.Flush() }

// writeJSON prints v indented, for scripts (jq).
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// fields prints "key: value" lines, aligned, for show commands.
func fields(w io.Writer, kv ...string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	for i := 0; i+1 < len(kv); i += 2 {
		v := kv[i+1]
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s:\t%s\n", kv[i], v)
	}
	return tw.Flush()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return fmtTime(*t)
}

// fmtMap prints k=v pairs sorted by key.
func fmtMap[V any](m map[string]V) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + fmtValue(m[k])
	}
	return strings.Join(parts, " ")
}

func fmtValue(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		return x
	}
	return fmt.Sprint(v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
