package report

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgbenchx/pgbenchx/input"
	"github.com/pgbenchx/pgbenchx/metrics"
)

// Formats a run folder can hold.
const (
	FormatJSON = "json"
	FormatCSV  = "csv"
	FormatMD   = "md"
)

// allFormats is also the order WriteRun writes in: run.json first, since
// every other file can be rendered again from it.
var allFormats = []string{FormatJSON, FormatCSV, FormatMD}

// Stamp is the time part of a folder's name: results/<Stamp>-<label>.
func Stamp(t time.Time) string { return t.UTC().Format("20060102-150405") }

// FolderFor is the folder for something made now under parent:
// <parent>/<Stamp(now)>-<label>.
func FolderFor(parent, label string) string {
	return filepath.Join(parent, Stamp(time.Now())+"-"+label)
}

// ParseFormats reads the --format flag: a comma-separated subset of md,
// csv and json in any order and case, or "all". It returns each chosen
// format once, in WriteRun's order.
func ParseFormats(s string) ([]string, error) {
	chosen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		switch f {
		case "": // "md,csv," is a slip, not a different wish
		case "all":
			for _, a := range allFormats {
				chosen[a] = true
			}
		case FormatJSON, FormatCSV, FormatMD:
			chosen[f] = true
		default:
			return nil, &input.Error{Flag: "format", Value: s, Accepted: "want md, csv, json (any comma-separated subset, e.g. md,csv) or all"}
		}
	}
	var out []string
	for _, f := range allFormats {
		if chosen[f] {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, &input.Error{Flag: "format", Value: s, Accepted: "name at least one of md, csv, json, or all"}
	}
	return out, nil
}

// WriteRun writes the chosen formats of r into dir, creating it if
// missing: run.json for json, summary.csv, totals.csv and timeseries.csv for csv,
// report.md and its SVG charts (WriteCharts) for md. It returns the paths
// written and, joined, the error of each file it could not write; every
// file is whole or absent.
func WriteRun(dir string, r *metrics.Result, formats []string) ([]string, error) {
	if r == nil {
		return nil, errors.New("report: no result to write")
	}
	chosen, err := chooseFormats(formats)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// The charts go with report.md and are written just before it, so it
	// links the ones that exist.
	var charts []string
	withCharts := func(w io.Writer, r *metrics.Result) error { return WriteMarkdownWithCharts(w, r, charts) }
	type file struct {
		format, name string
		render       func(io.Writer, *metrics.Result) error
	}
	files := []file{
		{FormatJSON, "run.json", writeJSON},
		{FormatCSV, "summary.csv", WriteSummaryCSV},
		{FormatCSV, "totals.csv", WriteTotalsCSV},
		{FormatCSV, "kinds.csv", WriteKindsCSV},
		{FormatCSV, "timeseries.csv", WriteTimeseriesCSV},
		{FormatMD, "report.md", withCharts},
	}
	// One file failing does not stop the others: a run may have taken an
	// hour, and whatever can still be written of it should be.
	var written []string
	var errs []error
	for _, f := range files {
		if !chosen[f.format] {
			continue
		}
		if f.format == FormatMD {
			names, err := WriteCharts(dir, r)
			if err != nil {
				errs = append(errs, err)
			}
			for _, n := range names {
				written = append(written, filepath.Join(dir, n))
			}
			charts = names
		}
		path := filepath.Join(dir, f.name)
		if err := writeAtomic(path, func(w io.Writer) error { return f.render(w, r) }); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", path, err))
			continue
		}
		written = append(written, path)
	}
	return written, errors.Join(errs...)
}

// writeJSON is metrics.Result's own encoding, indented so a person can read
// and diff run.json; metrics.Load reads it back.
func writeJSON(w io.Writer, r *metrics.Result) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// writeAtomic renders into a hidden temporary file beside path and renames
// it over path: a reader, or a run killed halfway, sees the old file or the
// new one, never half of one. The fsync makes the rename safe against a
// crash too, not only against an interrupt.
func writeAtomic(path string, render func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriter(f)
	if err = render(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return err
	}
	// CreateTemp makes 0600 files; run folders are meant to be shared.
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// WriteComparison writes a comparison's folder: comparison.md (linking the
// scaling chart when there is one), comparison.csv and scaling.svg, each
// whole or absent. It returns the paths written.
func WriteComparison(dir string, c *Comparison) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var written, charts []string
	var errs []error
	// A chart that cannot be drawn is left out, not a failed comparison.
	if svg, err := ScalingChart(c.Points()); err == nil && len(svg) > 0 {
		path := filepath.Join(dir, "scaling.svg")
		if err := writeAtomic(path, func(w io.Writer) error { _, err := w.Write(svg); return err }); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", path, err))
		} else {
			charts = append(charts, "scaling.svg")
			written = append(written, path)
		}
	}
	for _, f := range []struct {
		name   string
		render func(io.Writer) error
	}{
		{"comparison.md", func(w io.Writer) error { return c.WriteMarkdown(w, charts) }},
		{"comparison.csv", c.WriteCSV},
	} {
		path := filepath.Join(dir, f.name)
		if err := writeAtomic(path, f.render); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", path, err))
			continue
		}
		written = append(written, path)
	}
	return written, errors.Join(errs...)
}

// chooseFormats reads the formats a writer is asked for.
func chooseFormats(formats []string) (map[string]bool, error) {
	chosen := map[string]bool{}
	for _, f := range formats {
		switch f {
		case FormatJSON, FormatCSV, FormatMD:
			chosen[f] = true
		default:
			return nil, fmt.Errorf("report: unknown format %q (want md, csv or json)", f)
		}
	}
	if len(chosen) == 0 {
		return nil, errors.New("report: no format to write")
	}
	return chosen, nil
}

// folder writes the files of a capacity search or a sweep as WriteRun
// writes a run's: each whole or not at all, going on past one that fails
// (what can still be written of a long search should be).
type folder struct {
	dir     string
	chosen  map[string]bool
	written []string
	errs    []error
}

func newFolder(dir string, formats []string) (*folder, error) {
	chosen, err := chooseFormats(formats)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &folder{dir: dir, chosen: chosen}, nil
}

func (f *folder) write(name string, render func(io.Writer) error) bool {
	path := filepath.Join(f.dir, name)
	if err := writeAtomic(path, render); err != nil {
		f.errs = append(f.errs, fmt.Errorf("write %s: %w", path, err))
		return false
	}
	f.written = append(f.written, path)
	return true
}

// svgChart is a chart file and how to draw it (nil, nil: nothing to draw).
type svgChart struct {
	file, alt string
	render    func() ([]byte, error)
}

// charts writes the charts that have something to draw and returns their
// names, so the Markdown beside them links only those.
func (f *folder) charts(list []svgChart) []string {
	var names []string
	for _, ch := range list {
		svg, err := ch.render()
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("chart %s: %w", ch.file, err))
			continue
		}
		if len(svg) == 0 {
			continue
		}
		if f.write(ch.file, func(w io.Writer) error { _, err := w.Write(svg); return err }) {
			names = append(names, ch.file)
		}
	}
	return names
}

func (f *folder) done() ([]string, error) { return f.written, errors.Join(f.errs...) }

// loadFile reads a capacity.json or sweep.json (what, "capacity" or
// "sweep") into v, refusing another pgbenchx file given by mistake (one
// without every key of keys) and a schema this version does not know.
func loadFile(path, what string, keys []string, v any, schema func() int, newest int) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, k := range keys {
		if _, ok := top[k]; !ok {
			return fmt.Errorf("%s: not a %s.json (no %s)", path, what, k)
		}
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if n := schema(); n < 1 || n > newest {
		return fmt.Errorf("%s: %s schema %d, this pgbenchx reads schemas 1 to %d", path, what, n, newest)
	}
	return nil
}

// writeIndented writes v as indented JSON, a person can read and diff it.
func writeIndented(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
