package workload

import "testing"

func TestRedactPasswords(t *testing.T) {
	tests := []struct{ text, pw, want string }{
		{"dial tcp 127.0.0.1:1: connect: connection refused", "p", "dial tcp 127.0.0.1:1: connect: connection refused"},
		{"primary postgres://u:p@127.0.0.1:1/db: refused", "p", "primary postgres://u:xxxxx@127.0.0.1:1/db: refused"},
		{"host=h password=s3cret user=u", "s3cret", "host=h password=xxxxx user=u"},
		{"host=h password='it\\'s' user=u", "it's", "host=h password=xxxxx user=u"},
		{"postgres://u:a%2Fb@h/db?password=a/b&x=1", "a/b", "postgres://u:xxxxx@h/db?password=xxxxx&x=1"},
		{"postgres://u:s3cret@h/db password=s3cret", "", "postgres://u:s3cret@h/db password=s3cret"},
		{"user s3cret wrote password=s3cretive", "s3cret", "user s3cret wrote password=s3cretive"},
	}
	for _, tt := range tests {
		if got := RedactPasswords(tt.text, tt.pw); got != tt.want {
			t.Errorf("RedactPasswords(%q, %q) = %q, want %q", tt.text, tt.pw, got, tt.want)
		}
	}
}
