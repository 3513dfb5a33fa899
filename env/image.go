package env

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	"golang.org/x/sys/unix"
)

// image is a data folder packed into one file, mapped into memory and
// written out as every node's folder. Against a copy file by file through
// os.File (measured here in /dev/shm: ~100 ms a folder, and ~0.2 s more to
// read the ~1000 files of the source), plain system calls from memory take
// ~22 ms, and the source is one mapped file.
type image struct {
	entries []imageEntry
	mapped  []byte // the mapping the entries' data points into
}

type imageEntry struct {
	rel  string // path in the folder; "." is the folder itself
	dir  bool
	mode uint32
	size int64  // a file's size: data, then zeros
	data []byte // up to the last byte that is not zero
}

// imageMagic starts an image file; the layout after it is, per entry:
// path length (uint16), path, 1 for a folder (uint8), mode (uint32), size
// (uint64), data length (uint64), data; little-endian. A file's data stops
// at its last non-zero byte: the WAL segment is 16 MB, mostly zeros.
const imageMagic = "pgbenchx image 2\n"

// packImage writes the data folder src as an image file at path, synced.
// Of pg_wal's segments, only the first is taken: the folder must have been
// shut down cleanly with its last checkpoint in that segment; the others
// are recycled ones, for later.
func packImage(src, path string) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	var first string // Glob sorts: the first segment is the lowest
	segs, _ := filepath.Glob(filepath.Join(src, "pg_wal", "*"))
	for _, seg := range segs {
		if walSegmentRE.MatchString(filepath.Base(seg)) {
			first = seg
			break
		}
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString(imageMagic)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if filepath.Dir(rel) == "pg_wal" && walSegmentRE.MatchString(d.Name()) && p != first {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var data []byte
		switch {
		case d.IsDir():
		case info.Mode().IsRegular():
			if data, err = os.ReadFile(p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unexpected file type %v", p, info.Mode().Type())
		}
		var dir uint8
		if d.IsDir() {
			dir = 1
		}
		hdr := binary.LittleEndian.AppendUint16(nil, uint16(len(rel)))
		hdr = append(hdr, rel...)
		hdr = append(hdr, dir)
		hdr = binary.LittleEndian.AppendUint32(hdr, uint32(info.Mode().Perm()))
		hdr = binary.LittleEndian.AppendUint64(hdr, uint64(len(data)))
		data = bytes.TrimRight(data, "\x00")
		hdr = binary.LittleEndian.AppendUint64(hdr, uint64(len(data)))
		w.Write(hdr)
		_, err = w.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Sync()
}

// openImage maps an image file; close releases it.
func openImage(path string) (*image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < int64(len(imageMagic)) {
		return nil, fmt.Errorf("%s: not an image", path)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	im := &image{mapped: m}
	if err := im.parse(); err != nil {
		im.close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return im, nil
}

func (im *image) parse() error {
	b := im.mapped
	if string(b[:len(imageMagic)]) != imageMagic {
		return errors.New("not an image")
	}
	b = b[len(imageMagic):]
	short := errors.New("image is cut short")
	for len(b) > 0 {
		if len(b) < 2 {
			return short
		}
		n := int(binary.LittleEndian.Uint16(b))
		if len(b) < 2+n+1+4+8+8 {
			return short
		}
		e := imageEntry{rel: string(b[2 : 2+n]), dir: b[2+n] == 1}
		b = b[2+n+1:]
		e.mode = binary.LittleEndian.Uint32(b)
		e.size = int64(binary.LittleEndian.Uint64(b[4:]))
		used := binary.LittleEndian.Uint64(b[12:])
		b = b[20:]
		if uint64(len(b)) < used || used > uint64(e.size) {
			return short
		}
		e.data, b = b[:used], b[used:]
		im.entries = append(im.entries, e)
	}
	if len(im.entries) == 0 || im.entries[0].rel != "." {
		return errors.New("image has no root folder")
	}
	return nil
}

func (im *image) close() error {
	if im.mapped == nil {
		return nil
	}
	err := unix.Munmap(im.mapped)
	im.mapped, im.entries = nil, nil
	return err
}

// write lays the image out in dst, an existing folder, handing every
// entry to u. Sparse, a file's zeros at the end are a hole: for RAM (a
// hole and written zeros cost the same there once written to). Otherwise
// they are written, as PostgreSQL writes a new WAL segment, so that its
// later writes find the space allocated. Nothing is synced: the caller
// syncs the file system once all folders are written (a durable env), or
// never (--fast).
func (im *image) write(ctx context.Context, dst string, u osUser, sparse bool) error {
	for i, e := range im.entries {
		if i%64 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		target := filepath.Join(dst, e.rel)
		if err := e.writeTo(target, u, sparse); err != nil {
			return fmt.Errorf("%s: %w", target, err)
		}
	}
	return nil
}

func (e imageEntry) writeTo(target string, u osUser, sparse bool) error {
	if e.dir {
		if e.rel == "." {
			if err := unix.Chmod(target, 0o700); err != nil {
				return err
			}
		} else if err := unix.Mkdir(target, e.mode); err != nil {
			return err
		}
		spreadSubdirs(target)
		if u.switchTo {
			return unix.Lchown(target, u.UID, u.GID)
		}
		return nil
	}
	fd, err := unix.Open(target, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, e.mode)
	if err != nil {
		return err
	}
	err = writeAll(fd, e.data)
	for rest := e.size - int64(len(e.data)); err == nil && rest > 0; {
		if sparse {
			err = unix.Ftruncate(fd, e.size)
			break
		}
		n := min(rest, int64(len(zeros)))
		err = writeAll(fd, zeros[:n])
		rest -= n
	}
	if err != nil {
		unix.Close(fd)
		return err
	}
	if u.switchTo {
		if err := unix.Fchown(fd, u.UID, u.GID); err != nil {
			unix.Close(fd)
			return err
		}
	}
	return unix.Close(fd)
}

var zeros = make([]byte, 1<<20)

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

var walSegmentRE = regexp.MustCompile(`^[0-9A-F]{24}$`)
