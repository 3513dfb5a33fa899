package workload

import "testing"

func TestRedactor(t *testing.T) {
	tests := []struct{ text, pw, want string }{
		{"dial tcp 127.0.0.1:1: connect: connection refused", "p", "dial tcp 127.0.0.1:1: connect: connection refused"},
		{"primary postgres://u:p@127.0.0.1:1/db: refused", "p", "primary postgres://u:xxxxx@127.0.0.1:1/db: refused"},
		{"host=h password=s3cret user=u", "s3cret", "host=h password=xxxxx user=u"},
		{`host=h password='it\'s here' user=u`, "it's here", "host=h password=xxxxx user=u"},
		{"postgres://u:a%2Fb@h/db?password=a/b&x=1", "a/b", "postgres://u:xxxxx@h/db?password=xxxxx&x=1"},
		// Any spelling in a DSN, known password or not.
		{"postgresql://u:p%61ss@h/db", "", "postgresql://u:xxxxx@h/db"},
		{"cannot parse `host=h PASSWORD = secret`", "", "cannot parse `host=h PASSWORD = xxxxx`"},
		// Outside a DSN nothing changes.
		{"user s3cret wrote password-less notes", "s3cret", "user s3cret wrote password-less notes"},
		{"tcp p p:p", "p", "tcp p p:p"},
		{"--via x=postgres://u:p@ss@h:5/db failed", "", "--via x=postgres://u:xxxxx@h:5/db failed"},
		{"postgres://u:pw@h/db mail me@example.com", "", "postgres://u:xxxxx@h/db mail me@example.com"},
		{"postgres://u:pa/ss@h/db", "", "postgres://u:xxxxx@h/db"},
	}
	for _, tt := range tests {
		if got := Redactor(tt.pw)(tt.text); got != tt.want {
			t.Errorf("Redactor(%q)(%q) = %q, want %q", tt.pw, tt.text, got, tt.want)
		}
	}
}
