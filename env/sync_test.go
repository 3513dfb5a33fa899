package env

import (
	"slices"
	"testing"

	"github.com/pgbenchx/pgbenchx/input"
)

func TestParseSync(t *testing.T) {
	good := map[string]string{
		"ANY 1 (standby1, standby2)": "ANY 1 (standby1, standby2)",
		"any 2 (standby1,standby2)":  "ANY 2 (standby1, standby2)",
		"FIRST 1 (standby1)":         "FIRST 1 (standby1)",
		"1 (standby2, standby1)":     "FIRST 1 (standby2, standby1)",
		"off":                        "",
		"":                           "",
	}
	for in, want := range good {
		r, err := ParseSync(in)
		if err != nil || r.String() != want {
			t.Errorf("ParseSync(%q) = %q, %v; want %q", in, r, err, want)
		}
	}
	for _, in := range []string{"ANY (standby1)", "ANY 0 (standby1)", "ANY 3 (standby1, standby2)", "SOME 1 (standby1)",
		"FIRST 1 (primary)", "FIRST 1 (standby1, standby1)", "FIRST 1 standby1", "*"} {
		if _, err := ParseSync(in); !input.Is(err) {
			t.Errorf("ParseSync(%q): %v, want bad input on --sync", in, err)
		}
	}
	r, _ := ParseSync("ANY 1 (standby1, standby3)")
	if err := (&Spec{Standbys: 2, Sync: r}).Validate(); !input.Is(err) {
		t.Errorf("a rule naming standby3 of 2 standbys: %v", err)
	}
}

func TestSyncAfterFailover(t *testing.T) {
	tests := []struct {
		rule, promoted string
		remaining      []string
		want           string
	}{
		{"FIRST 1 (standby1)", "standby1", []string{"standby2"}, "FIRST 1 (standby2)"},
		{"ANY 1 (standby1, standby2)", "standby1", []string{"standby2"}, "ANY 1 (standby2)"},
		{"ANY 2 (standby1, standby2)", "standby1", []string{"standby2"}, "ANY 1 (standby2)"},
		{"FIRST 1 (standby2)", "standby1", []string{"standby2", "standby3"}, "FIRST 1 (standby2)"},
		{"FIRST 2 (standby1, standby2)", "standby1", []string{"standby2", "standby3"}, "FIRST 2 (standby3, standby2)"},
		{"FIRST 1 (standby1)", "standby1", nil, ""},
		{"off", "standby1", []string{"standby2"}, ""},
	}
	for _, tt := range tests {
		r, err := ParseSync(tt.rule)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.AfterFailover(tt.promoted, tt.remaining).String(); got != tt.want {
			t.Errorf("%s after promoting %s: %q, want %q", tt.rule, tt.promoted, got, tt.want)
		}
	}
}

func TestParseSyncs(t *testing.T) {
	rules, err := ParseSyncs(`off,ANY 1 (standby1, standby2),FIRST 1 (standby2)`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rules {
		got = append(got, r.String())
	}
	if want := []string{"", "ANY 1 (standby1, standby2)", "FIRST 1 (standby2)"}; !slices.Equal(got, want) {
		t.Errorf("ParseSyncs = %q, want %q", got, want)
	}
	for _, bad := range []string{"off,off", "ANY 1 (standby1),any 1 (standby1)", "off,ANY 3 (standby1)", "off,", "ANY 1 (standby1),", ",FIRST 1 (standby1)"} {
		if _, err := ParseSyncs(bad); !input.Is(err) {
			t.Errorf("ParseSyncs(%q) = %v, want bad input", bad, err)
		}
	}
}

func TestSyncFor(t *testing.T) {
	for _, tc := range []struct {
		rule     string
		standbys int
		want     string
	}{
		{"ANY 1 (standby1, standby2)", 2, "ANY 1 (standby1, standby2)"},
		{"ANY 1 (standby1, standby2)", 1, "ANY 1 (standby1)"},
		{"ANY 2 (standby1, standby2)", 1, "ANY 1 (standby1)"},
		{"FIRST 1 (standby2)", 1, ""},
		{"off", 1, ""},
	} {
		r, err := ParseSync(tc.rule)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.For(tc.standbys).String(); got != tc.want {
			t.Errorf("%s on %d standbys = %q, want %q", tc.rule, tc.standbys, got, tc.want)
		}
	}
}

// TestSyncAfterFailoverOnlyFollowers: the new primary's rule names only
// standbys that follow it; none following leaves it asynchronous.
func TestSyncAfterFailoverOnlyFollowers(t *testing.T) {
	r, err := ParseSync("ANY 1 (standby1, standby2, standby3)")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		following []string
		want      string
	}{
		{[]string{"standby2", "standby3"}, "ANY 1 (standby2, standby3)"},
		{[]string{"standby3"}, "ANY 1 (standby3)"},
		{nil, ""},
	} {
		if got := r.AfterFailover("standby1", tc.following).Only(tc.following).String(); got != tc.want {
			t.Errorf("following %q: %q, want %q", tc.following, got, tc.want)
		}
	}
}
