package workload

import (
	"net/url"
	"regexp"
	"strings"
)

// RedactPasswords replaces each password where it stands in a connection
// string inside text: the password field of a URL (user:PASSWORD@host)
// and the value of a password= keyword, quoted or not. Nothing else in
// the text changes, so a one-letter password cannot turn "tcp" into
// "tcxxxxx"; and a password that appears elsewhere in an error's text (a
// server never echoes one) is left alone.
func RedactPasswords(text string, passwords ...string) string {
	for _, pw := range passwords {
		if pw == "" {
			continue
		}
		for _, form := range uniq(pw, url.PathEscape(pw), url.QueryEscape(pw), url.UserPassword("u", pw).String()[2:]) {
			text = strings.ReplaceAll(text, ":"+form+"@", ":"+Redacted+"@")
		}
		re := regexp.MustCompile(`(?i)(password\s*=\s*)('` + regexp.QuoteMeta(strings.ReplaceAll(pw, `'`, `\'`)) + `'|` + regexp.QuoteMeta(pw) + `)(\s|$|&)`)
		text = re.ReplaceAllString(text, "${1}"+Redacted+"${3}")
	}
	return text
}

// Redacted stands where a password was.
const Redacted = "xxxxx"

func uniq(list ...string) []string {
	var out []string
	for _, s := range list {
		dup := false
		for _, o := range out {
			dup = dup || o == s
		}
		if !dup {
			out = append(out, s)
		}
	}
	return out
}
