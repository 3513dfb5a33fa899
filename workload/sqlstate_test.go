package workload

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestSqlstateLabel(t *testing.T) {
	for _, c := range []struct{ code, want string }{
		{"53300", "53300 too_many_connections"},
		{"57014", "57014 query_canceled"},
		{"40001", "40001 serialization_failure"},
		{"25006", "25006 read_only_sql_transaction"},
		{"57P01", "57P01 admin_shutdown"},
		{"08006", "08006 connection_failure"},
		{"42P01", "42P01 undefined_table"},
		{"23505", "23505 unique_violation"},
		{"3D000", "3D000 invalid_catalog_name"},
		{"28P01", "28P01 invalid_password"},
		{"25P04", "25P04 transaction_timeout"},    // added in PostgreSQL 17
		{"2202E", "2202E array_subscript_error"},  // listed twice; the named entry wins
		{"53999", "53999 insufficient_resources"}, // unknown code, known class
		{"08P99", "08P99 connection_exception"},   // likewise
		{"ZZ999", "ZZ999"},                        // unknown class
		{"53", "53"},                              // not a code
		{"", ""},
	} {
		if got := sqlstateLabel(c.code); got != c.want {
			t.Errorf("sqlstateLabel(%q) = %q, want %q", c.code, got, c.want)
		}
	}
}

func TestSqlstateTables(t *testing.T) {
	if len(sqlstateNames) < 250 {
		t.Errorf("sqlstateNames has %d codes; errcodes.txt lists about 260", len(sqlstateNames))
	}
	for code, name := range sqlstateNames {
		if len(code) != 5 {
			t.Errorf("code %q: not 5 characters", code)
			continue
		}
		for _, r := range code {
			if !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z') {
				t.Errorf("code %q: %q is not in [0-9A-Z]", code, r)
			}
		}
		if _, ok := sqlstateClasses[code[:2]]; !ok {
			t.Errorf("code %q: class %q is not in sqlstateClasses", code, code[:2])
		}
		if name == "" {
			t.Errorf("code %q: empty name", code)
		}
	}
	for class, name := range sqlstateClasses {
		if len(class) != 2 || name == "" {
			t.Errorf("class %q -> %q", class, name)
		}
	}
}

// TestRecoveryConflictCountedApart: a standby cancelling a read for its
// replay is not counted with other serialization failures.
func TestRecoveryConflictCountedApart(t *testing.T) {
	tests := []struct {
		err  *pgconn.PgError
		want string
	}{
		{&pgconn.PgError{Code: "40001", Message: "canceling statement due to conflict with recovery",
			Detail: "User query might have needed to see row versions that must be removed."}, LabelRecoveryConflict},
		{&pgconn.PgError{Code: "40P01", Message: "canceling statement due to conflict with recovery",
			Detail: "User transaction caused buffer deadlock with recovery."}, LabelRecoveryConflict},
		{&pgconn.PgError{Code: "40001", Message: "could not serialize access due to concurrent update"}, "40001 serialization_failure"},
	}
	for _, tt := range tests {
		if _, label := classify(tt.err, false); label != tt.want {
			t.Errorf("%s %q: label %q, want %q", tt.err.Code, tt.err.Message, label, tt.want)
		}
	}
}
