package env

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestScramVerifierMatchesPostgreSQL(t *testing.T) {
	// Made by PostgreSQL 15: CREATE ROLE u PASSWORD 'pencil', read back
	// from pg_authid. Same password and salt must give the same secret.
	const fromServer = "SCRAM-SHA-256$4096:/z0B4ugPK28rMKcNi+LhMw==$Hi5nZw1/uBcd9l1tjwQUJo/Z20qTQmdO9hytrNnn/Mw=:OGX4MP5sQsNxzN7BlSlRP1IJa6e3U0suZxMsPjmwsNI="
	salt, err := base64.StdEncoding.DecodeString("/z0B4ugPK28rMKcNi+LhMw==")
	if err != nil {
		t.Fatal(err)
	}
	got, err := scramVerifierSalt("pencil", salt)
	if err != nil {
		t.Fatal(err)
	}
	if got != fromServer {
		t.Errorf("verifier\n got %s\nwant %s", got, fromServer)
	}
	other, _ := scramVerifierSalt("pencil2", salt)
	if other == fromServer {
		t.Error("a different password gave the same verifier")
	}
}

func TestScramVerifierRandomSalt(t *testing.T) {
	a, _ := scramVerifier("secret")
	b, _ := scramVerifier("secret")
	if a == b {
		t.Error("two verifiers of one password share a salt")
	}
	if strings.Contains(a, "secret") || !strings.HasPrefix(a, "SCRAM-SHA-256$4096:") {
		t.Errorf("unexpected verifier %q", a)
	}
}
