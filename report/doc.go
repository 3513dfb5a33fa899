// Package report renders Results: terminal tables, Markdown, CSV, JSON and
// charts, and compares runs side by side.
package report
