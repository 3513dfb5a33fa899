package input

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		e    *Error
		want string
	}{
		{Bad("clients", "0", "want 1 to 1024"), "--clients 0: want 1 to 1024"},
		{Bad("standby", "", "needs --primary too"), "--standby: needs --primary too"},
		{Bad("threshold", "p99<5parsecs", "p99 takes a latency"), `--threshold "p99<5parsecs": p99 takes a latency`},
		{&Error{Flag: "weights", Value: "a\nb", Reason: "line\nbreak", Accepted: "want x"}, `--weights "a\nb": line break; want x`},
		{Bad("RUN_FOLDER", "/no/run", "holds no run.json"), "RUN_FOLDER /no/run: holds no run.json"},
		{Bad("standbys", "9", "env %q has %d", "lab", 2), `--standbys 9: env "lab" has 2`},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
	if !Is(fmt.Errorf("wrapped: %w", Bad("x", "y", "z"))) || Is(errors.New("plain")) {
		t.Error("Is does not tell bad input through wrapping, or takes any error for it")
	}
}

func TestSplitList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"on", []string{"on"}},
		{"on, remote_apply", []string{"on", "remote_apply"}},
		{"off,ANY 1 (standby1, standby2)", []string{"off", "ANY 1 (standby1, standby2)"}},
		{"FIRST 1 (standby1),ANY 2 (standby1,standby2,standby3)", []string{"FIRST 1 (standby1)", "ANY 2 (standby1,standby2,standby3)"}},
		{"a,,b", []string{"a", "", "b"}},
	} {
		if got := SplitList(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("SplitList(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
