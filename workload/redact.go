package workload

import (
	"net/url"
	"regexp"
	"strings"
)

// Redacted stands where a password was.
const Redacted = "xxxxx"

var (
	// The password field of a postgres:// URL, however it is encoded.
	// A password may hold '@' (libpq takes the last one before the host):
	// the match runs to the last '@' before the host's '/'.
	urlPassword = regexp.MustCompile(`(?i)(\bpostgres(?:ql)?://[^:@/\s]*:)[^@\s]*(?:@[^@\s/?]*)*@`)
	// A password= keyword, quoted (libpq's backslash escapes) or not, in a
	// key=value string or a URL's query.
	kvPassword = regexp.MustCompile("(?i)(\\bpassword\\s*=\\s*)('(?:[^'\\\\]|\\\\.)*'|[^\\s&'\"`]+)")
)

// Redactor returns a function that takes passwords out of a text where
// they stand in a connection string: the password field of every URL and
// the value of every password= keyword, whatever they are, and each of
// the given passwords where it stands after "user:" before "@" in any
// spelling Go escapes it to. Nothing else changes, so a one-letter
// password cannot turn "tcp" into "tcxxxxx". The regular expressions are
// built once, not per call.
func Redactor(passwords ...string) func(string) string {
	var forms []string
	for _, pw := range passwords {
		if pw == "" {
			continue
		}
		for _, f := range []string{pw, url.PathEscape(pw), url.QueryEscape(pw), url.UserPassword("u", pw).String()[2:]} {
			if !contains(forms, f) {
				forms = append(forms, f)
			}
		}
	}
	return func(text string) string {
		text = urlPassword.ReplaceAllString(text, "${1}"+Redacted+"@")
		text = kvPassword.ReplaceAllString(text, "${1}"+Redacted)
		for _, f := range forms {
			text = strings.ReplaceAll(text, ":"+f+"@", ":"+Redacted+"@")
		}
		return text
	}
}

// RedactDSNs takes every connection string's password out of text.
func RedactDSNs(text string) string { return Redactor()(text) }
