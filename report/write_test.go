package report

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pgbenchx/pgbenchx/metrics"
)

func TestParseFormats(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{in: "md", want: []string{"md"}},
		{in: "md,csv,json", want: []string{"json", "csv", "md"}},
		{in: " csv , MD ", want: []string{"csv", "md"}},
		{in: "json,json", want: []string{"json"}},
		{in: "all", want: []string{"json", "csv", "md"}},
		{in: "md,all", want: []string{"json", "csv", "md"}},
		{in: "md,csv,", want: []string{"csv", "md"}},
		{in: "", wantErr: true},
		{in: " , ", wantErr: true},
		{in: "md,xml", wantErr: true},
		{in: "markdown", wantErr: true},
	} {
		got, err := ParseFormats(c.in)
		if c.wantErr {
			if err == nil {
				t.Errorf("ParseFormats(%q) = %v, want an error", c.in, got)
			} else if msg := err.Error(); !strings.Contains(msg, "--format") || !strings.Contains(msg, "md, csv, json") || strings.Contains(msg, "\n") {
				t.Errorf("ParseFormats(%q) error %q: want one line naming --format and what it accepts", c.in, msg)
			}
			continue
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseFormats(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

// TestRunRoundTrip is what `pgbenchx report <dir>` relies on: run.json read
// back renders the very same files.
func TestRunRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "results", "run1")
	r := fixture()
	paths, err := WriteRun(dir, r, []string{FormatJSON, FormatCSV, FormatMD})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %v, want 0644", p, st.Mode().Perm())
		}
	}
	want := []string{"run.json", "summary.csv", "totals.csv", "kinds.csv", "timeseries.csv", "lag_bytes.svg", "lag_ms.svg", "slot_bytes.svg",
		"throughput.svg", "latency_time.svg", "latency.svg", "share.svg", "report.md"}
	if !slices.Equal(names, want) {
		t.Errorf("wrote %v, want %v", names, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(want) {
		t.Errorf("%d files in the run folder, want %d (a temporary file left behind?)", len(entries), len(want))
	}

	back, err := metrics.Load(filepath.Join(dir, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		file string
		got  []byte
	}{
		{"summary.csv", render(t, WriteSummaryCSV, back)},
		{"timeseries.csv", render(t, WriteTimeseriesCSV, back)},
		{"report.md", render(t, WriteMarkdown, back)},
	} {
		orig, err := os.ReadFile(filepath.Join(dir, c.file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(orig, c.got) {
			t.Errorf("%s rendered from run.json differs from the original:\n%s\n--- original\n%s", c.file, c.got, orig)
		}
	}

	// Writing again replaces the files whole.
	if _, err := WriteRun(dir, back, []string{FormatCSV}); err != nil {
		t.Fatal(err)
	}
}

func TestWriteRunChosenFormatsOnly(t *testing.T) {
	dir := t.TempDir()
	paths, err := WriteRun(dir, fixture(), []string{FormatMD})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	if want := append(ChartFiles(fixture()), "report.md"); !slices.Equal(names, want) {
		t.Errorf("wrote %v, want report.md and its charts only (%v)", names, want)
	}
	if _, err := WriteRun(dir, fixture(), []string{"xml"}); err == nil {
		t.Error("an unknown format was accepted")
	}
	if _, err := WriteRun(dir, fixture(), nil); err == nil {
		t.Error("no format was accepted")
	}
	if _, err := WriteRun(dir, nil, []string{FormatMD}); err == nil {
		t.Error("a nil result was accepted")
	}
}

func TestMarkdownMentions(t *testing.T) {
	md := string(render(t, WriteMarkdown, fixture()))
	for _, want := range []string{
		"10,000 rows (10000)",
		"Row counts are equal on every node (10,000 rows).",
		"fsync off: not durable numbers",
		"on one host all nodes share the cores, so comparisons across standby counts measure co-location, not what another replica adds",
		"Open-loop schedule lag",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	// What the acceptance check greps for.
	if !regexp.MustCompile(`(?i)10[ ,.]?000`).MatchString(md) {
		t.Error("report.md does not mention the 10,000 written rows")
	}
	if strings.Contains(md, "postgres://") || strings.Contains(md, "xxxxx") {
		t.Error("report.md prints DSNs")
	}

	r := fixture()
	r.Interrupted = true
	r.Config.Rate = 0
	r.Write.RowCounts["standby2"] = 9500
	r.Write.CountsEqual = false
	r.Write.Standbys[1].CatchUpMS = -1
	r.Strategies[0].RYWChecks, r.Strategies[0].RYWViolation = 200, 3
	r.Strategies[0].CPU.LoadGenBound = true
	r.Strategies[0].ScheduleLag = nil
	md = strings.ToLower(string(render(t, WriteMarkdown, r)))
	for _, want := range []string{
		"This run was interrupted; figures cover what was measured before.",
		"closed loop",
		"Row counts DIFFER: primary 10,000, standby1 10,000, standby2 9,500.",
		"standby2 never caught up",
		"Read-your-writes: 200 checks, 3 violations (1.50%).",
		"the load generator was the bottleneck: these numbers understate the cluster",
	} {
		if !strings.Contains(md, strings.ToLower(want)) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	delete(r.Write.RowCounts, "standby1")
	if got := string(render(t, WriteMarkdown, r)); !strings.Contains(got, "(not counted: standby1)") {
		t.Error("report.md does not name the node whose rows were not counted")
	}
	if strings.Count(md, "open-loop schedule lag") != 1 {
		t.Error("schedule lag printed for a strategy without one")
	}

	r.Write = nil
	r.Environment.Provider = "external"
	md = strings.ToLower(string(render(t, WriteMarkdown, r)))
	for _, want := range []string{"No write phase in this run.", "the load generator's host was saturated"} {
		if !strings.Contains(md, strings.ToLower(want)) {
			t.Errorf("report.md lacks %q", want)
		}
	}
}
