package env

import (
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pgbenchx/pgbenchx/input"
)

func TestParseApplyDelays(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    map[string]time.Duration
		wantErr string
	}{
		{"empty", nil, map[string]time.Duration{}, ""},
		{"one", []string{"standby2=500ms"}, map[string]time.Duration{"standby2": 500 * time.Millisecond}, ""},
		{"comma list", []string{"standby1=0s, standby2=2s"}, map[string]time.Duration{"standby1": 0, "standby2": 2 * time.Second}, ""},
		{"repeated flag", []string{"standby1=1s", "standby3=1m"}, map[string]time.Duration{"standby1": time.Second, "standby3": time.Minute}, ""},
		{"no equals", []string{"standby2"}, nil, "want standbyN=DURATION"},
		{"primary", []string{"primary=1s"}, nil, "not a standby name"},
		{"standby0", []string{"standby0=1s"}, nil, "not a standby name"},
		{"bad duration", []string{"standby1=soon"}, nil, "want a duration"},
		{"negative", []string{"standby1=-1s"}, nil, "want a duration"},
		{"too long", []string{"standby1=2h"}, nil, "want a duration"},
		{"sub-millisecond", []string{"standby1=1500us"}, nil, "millisecond"},
		{"duplicate", []string{"standby1=1s", "standby1=2s"}, nil, "given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseApplyDelays(tt.in)
			checkErr(t, err, tt.wantErr, "apply-delay")
			if tt.wantErr == "" && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseSettings(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    []Setting
		wantErr string
	}{
		{"two", []string{"shared_buffers=256MB", "work_mem = 8MB"}, []Setting{{"shared_buffers", "256MB"}, {"work_mem", "8MB"}}, ""},
		{"dotted and empty value", []string{"auto_explain.log_min_duration=", "Log_Line_Prefix=%m "}, []Setting{{"auto_explain.log_min_duration", ""}, {"log_line_prefix", "%m"}}, ""},
		{"no equals", []string{"fsync"}, nil, "want key=value"},
		{"bad key", []string{"1abc=2"}, nil, "want key=value"},
		{"managed", []string{"port=5432"}, nil, "set by pgbenchx"},
		{"managed delay", []string{"recovery_min_apply_delay=1s"}, nil, "--apply-delay"},
		{"duplicate", []string{"a=1", "a=2"}, nil, "given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSettings(tt.in)
			checkErr(t, err, tt.wantErr, "pg-setting")
			if tt.wantErr == "" && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"default", "acc12345", "lab-2", "a", "x_y", strings.Repeat("a", 32)} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", "Lab", "a b", "../etc", "a/b", strings.Repeat("a", 33), "é"} {
		checkErr(t, ValidateName(bad), "1-32 characters", "name")
	}
}

func TestParseTopology(t *testing.T) {
	for in, want := range map[string]Topology{"": Star, "star": Star, "CASCADE": Cascade} {
		if got, err := ParseTopology(in); err != nil || got != want {
			t.Errorf("%q: got %q, %v", in, got, err)
		}
	}
	_, err := ParseTopology("ring")
	checkErr(t, err, "star", "topology")
}

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		name    string
		spec    Spec
		flag    string
		wantErr string
	}{
		{"defaults", Spec{Standbys: 2}, "", ""},
		{"negative standbys", Spec{Standbys: -1}, "standbys", "from 0 to 16"},
		{"too many standbys", Spec{Standbys: 1000}, "standbys", "from 0 to 16"},
		{"delay beyond standbys", Spec{Standbys: 2, ApplyDelay: map[string]time.Duration{"standby9": time.Second}}, "apply-delay", "standby1..standby2"},
		{"delay without standbys", Spec{Standbys: 0, ApplyDelay: map[string]time.Duration{"standby1": time.Second}}, "apply-delay", "no standbys"},
		{"bad name", Spec{Name: "Bad Name", Standbys: 1}, "name", "1-32"},
		{"bad topology", Spec{Standbys: 1, Topology: "ring"}, "topology", "star"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.spec
			err := s.Validate()
			checkErr(t, err, tt.wantErr, tt.flag)
			if err == nil && (s.Name != DefaultName || s.Topology != Star) {
				t.Errorf("defaults not filled: %+v", s)
			}
		})
	}
}

// checkErr asserts an *input.Error naming flag whose text holds want (or no
// error when want is empty), and that it fits on one line.
func checkErr(t *testing.T, err error, want, flag string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var ie *input.Error
	if !errors.As(err, &ie) {
		t.Fatalf("want an InputError containing %q, got %v", want, err)
	}
	if ie.Flag != flag {
		t.Errorf("error names --%s, want --%s: %v", ie.Flag, flag, err)
	}
	if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q: want one line containing %q", err, want)
	}
}

func TestParseProxies(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string // kind:k=v,... per proxy, ";"-joined; "" = an error
	}{
		{[]string{"pgpool"}, "pgpool:"},
		{[]string{"pgpool:delay_threshold=8kB,prefer_lower_delay_standby=on"}, "pgpool:delay_threshold=8kB,prefer_lower_delay_standby=on"},
		// What the flag parser hands over for the line above.
		{[]string{"pgpool:delay_threshold=8kB", "prefer_lower_delay_standby=on", "haproxy"}, "pgpool:delay_threshold=8kB,prefer_lower_delay_standby=on;haproxy:"},
		{[]string{"haproxy", "balance=leastconn"}, "haproxy:balance=leastconn"},
		{[]string{"pgbouncer"}, ""},
		{[]string{"pgpool", "pgpool"}, ""},
		{[]string{"pgpool:delay_threshold"}, ""},
		{[]string{"pgpool:x='1'"}, ""},
	} {
		got, err := ParseProxies(tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("ParseProxies(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		var parts []string
		for _, p := range got {
			var kv []string
			for k, v := range p.Options {
				kv = append(kv, k+"="+v)
			}
			sort.Strings(kv)
			parts = append(parts, p.Kind+":"+strings.Join(kv, ","))
		}
		if err != nil || strings.Join(parts, ";") != tc.want {
			t.Errorf("ParseProxies(%q) = %q, %v; want %q", tc.in, strings.Join(parts, ";"), err, tc.want)
		}
	}
}
