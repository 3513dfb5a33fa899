package bench

import (
	"runtime"
	"runtime/debug"

	"github.com/pgbenchx/pgbenchx/workload"
)

// version is set at build time by the Makefile:
//
//	go build -ldflags "-X github.com/pgbenchx/pgbenchx/bench.version=$(git describe --always --dirty)"
//
// A plain go build leaves it empty: Version then asks the binary's build
// information (a module version when installed with go install, else
// the commit when the build recorded one) and falls back to "devel".
var version string

// Version is this pgbenchx's version, as run.json and --version give it.
func Version() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
}

// VersionLine is what pgbenchx --version prints.
func VersionLine() string {
	return "pgbenchx " + Version() + " (" + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")"
}

// RedactArgs is a command line with every connection string's password
// taken out (--primary, --standby, --via take DSNs), nil for none.
func RedactArgs(args []string) []string {
	if len(args) == 0 {
		return nil
	}
	out := make([]string, len(args))
	redact := workload.Redactor()
	for i, a := range args {
		out[i] = redact(a)
	}
	return out
}
