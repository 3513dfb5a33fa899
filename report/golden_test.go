package report

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/pgbenchx/pgbenchx/metrics"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ from the current output")

// golden compares got with testdata/name, or rewrites it with -update.
// Review a rewritten golden file by eye before checking it in: it is the
// specification of what users read.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report/ -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./report/ -update rewrites it)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func render(t *testing.T, f func(io.Writer, *metrics.Result) error, r *metrics.Result) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := f(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestGolden(t *testing.T) {
	for _, c := range []struct {
		file string
		f    func(io.Writer, *metrics.Result) error
	}{
		{"summary.csv", WriteSummaryCSV},
		{"totals.csv", WriteTotalsCSV},
		{"kinds.csv", WriteKindsCSV},
		{"timeseries.csv", WriteTimeseriesCSV},
		{"report.md", WriteMarkdown},
		{"table.txt", WriteTable},
	} {
		t.Run(c.file, func(t *testing.T) {
			golden(t, c.file, render(t, c.f, fixture()))
		})
	}
}
