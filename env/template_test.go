package env

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTemplateMadeAndRemade makes a template from scratch (initdb, the
// admin role, the WAL switch) in an empty cache, then makes it again when
// the cached image is unreadable.
func TestTemplateMadeAndRemade(t *testing.T) {
	ctx := context.Background()
	bin, err := FindPgBin(ctx, "")
	if err != nil {
		t.Skip(err)
	}
	version, err := ServerVersion(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	u, err := resolveOSUser("")
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	check := func() {
		t.Helper()
		im, err := loadTemplate(ctx, cache, bin, version, u)
		if err != nil {
			t.Fatal(err)
		}
		defer im.close()
		var wal []string
		seen := map[string]bool{}
		for _, e := range im.entries {
			seen[e.rel] = true
			if filepath.Dir(e.rel) == "pg_wal" && walSegmentRE.MatchString(filepath.Base(e.rel)) {
				wal = append(wal, e.rel)
				if e.size != 16<<20 || len(e.data) == 0 || len(e.data) > 1<<20 {
					t.Errorf("%s: %d bytes, %d of them up to its last non-zero byte", e.rel, e.size, len(e.data))
				}
			}
		}
		// The shutdown checkpoint starts the second segment: the first,
		// with initdb's WAL, is not in the template.
		if len(wal) != 1 || !strings.HasSuffix(wal[0], "000000010000000000000002") {
			t.Errorf("WAL segments in the template: %v", wal)
		}
		for _, want := range []string{"PG_VERSION", "global/pg_control", "pg_hba.conf", "base"} {
			if !seen[want] {
				t.Errorf("template has no %s", want)
			}
		}
	}
	check()
	imgs, _ := filepath.Glob(filepath.Join(cache, "templates", "*.img"))
	if len(imgs) != 1 {
		t.Fatalf("cached images: %v", imgs)
	}
	if err := os.WriteFile(imgs[0], []byte("cut short"), 0o600); err != nil {
		t.Fatal(err)
	}
	check()
}
