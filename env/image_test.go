package env

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestImageRoundTrip packs a folder and writes it out again, sparse and
// not: same files, modes, contents and sizes; only the first WAL segment.
func TestImageRoundTrip(t *testing.T) {
	src := t.TempDir()
	wal := append([]byte("segment"), make([]byte, 1<<20)...) // zeros at the end
	files := map[string][]byte{
		"PG_VERSION":                        []byte("15\n"),
		"base/1/1259":                       bytes.Repeat([]byte{7}, 8192),
		"base/1/empty":                      nil,
		"pg_wal/000000010000000000000002":   wal,
		"pg_wal/archive_status/.keep":       nil,
		"global/pg_control":                 append(make([]byte, 100), 1), // zeros, then data
		"pg_wal/000000010000000000000003":   []byte("recycled"),           // left out
		"pg_wal/00000001.history":           []byte("1\t0/0\tno recovery target\n"),
		"pg_logical/replorigin_checkpoint":  []byte("x"),
		"pg_stat/nothing-but-zeros-in-here": make([]byte, 4096),
	}
	for rel, data := range files {
		p := filepath.Join(src, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(t.TempDir(), "t.img")
	if err := packImage(src, img); err != nil {
		t.Fatal(err)
	}
	im, err := openImage(img)
	if err != nil {
		t.Fatal(err)
	}
	defer im.close()
	for _, sparse := range []bool{false, true} {
		dst := t.TempDir()
		if err := im.write(context.Background(), dst, osUser{}, sparse); err != nil {
			t.Fatal(err)
		}
		for rel, data := range files {
			got, err := os.ReadFile(filepath.Join(dst, rel))
			if rel == "pg_wal/000000010000000000000003" {
				if err == nil {
					t.Errorf("sparse=%v: a recycled WAL segment was copied", sparse)
				}
				continue
			}
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("sparse=%v: %s: %d bytes (%v), want %d", sparse, rel, len(got), err, len(data))
			}
		}
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(dst, "pg_wal/000000010000000000000002"), &st); err != nil {
			t.Fatal(err)
		}
		// 512-byte blocks: written out in full unless sparse.
		if allocated := st.Blocks * 512; sparse != (allocated < int64(len(wal))) {
			t.Errorf("sparse=%v: WAL segment has %d bytes allocated of %d", sparse, allocated, len(wal))
		}
		if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("folder mode %v, %v", fi.Mode(), err)
		}
	}
}

func TestOpenImageRefusesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"short": "pg", "foreign": "not an image at all, just text", "cut": imageMagic + "\x05\x00ab"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if im, err := openImage(p); err == nil {
			im.close()
			t.Errorf("%s: opened as an image", name)
		}
	}
}
