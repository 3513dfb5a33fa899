package workload

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The shape check of our tables: what sits at each of our names, compared
// with what pgbenchx creates there.

// relation is what sits at one of our tables' names.
type relation struct {
	oid               uint32
	name              string
	kind, persistence string
}

// checkShape compares the relation at spec's name with spec. rel is nil
// when nothing has the name.
func checkShape(ctx context.Context, tx pgx.Tx, nsp uint32, spec tableSpec) (*relation, []string, error) {
	rel := &relation{name: spec.name}
	err := tx.QueryRow(ctx, `SELECT c.oid, c.relkind::text, c.relpersistence::text
		FROM pg_catalog.pg_class c WHERE c.relnamespace = $1 AND c.relname = $2`, nsp, spec.name).Scan(&rel.oid, &rel.kind, &rel.persistence)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if rel.kind != "r" {
		return rel, []string{fmt.Sprintf("it is a %s, not a plain table", relkindName(rel.kind))}, nil
	}
	var problems []string
	if rel.persistence != "p" {
		problems = append(problems, "it is UNLOGGED or temporary, so standbys would never see its rows")
	}

	// Columns, in order (inserts without a column list depend on it).
	rows, err := tx.Query(ctx, `SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
			coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity::text, a.attgenerated::text
		FROM pg_catalog.pg_attribute a
		LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, rel.oid)
	if err != nil {
		return nil, nil, err
	}
	var got []column
	for rows.Next() {
		var c column
		var identity, generated string
		if err := rows.Scan(&c.name, &c.typ, &c.notNull, &c.def, &identity, &generated); err != nil {
			rows.Close()
			return nil, nil, err
		}
		if identity != "" {
			c.def = "GENERATED AS IDENTITY"
		}
		if generated != "" {
			c.def = "GENERATED ALWAYS AS (" + c.def + ")"
		}
		got = append(got, c)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	if sig := columnsSig(got); sig != columnsSig(spec.columns) {
		problems = append(problems, columnProblems(got, spec.columns)...)
	}
	for i, c := range spec.columns {
		// A default that is no nextval() at all is reported above.
		if c.def != serialDefault || i >= len(got) || got[i].name != c.name || !nextvalRE.MatchString(got[i].def) {
			continue
		}
		if ok, err := ownsSequence(ctx, tx, spec.name, c.name, got[i].def); err != nil {
			return nil, nil, err
		} else if !ok {
			problems = append(problems, fmt.Sprintf("column %s's default is %s, not the nextval() of a sequence it owns", c.name, showDefault(got[i].def)))
		}
	}

	cons, err := strs(ctx, tx, `SELECT conname::text || ' ' || pg_catalog.pg_get_constraintdef(oid)
		FROM pg_catalog.pg_constraint WHERE conrelid = $1 AND contype <> 'n' ORDER BY 1`, rel.oid)
	if err != nil {
		return nil, nil, err
	}
	problems = append(problems, setProblems("constraint", cons, spec.constraints)...)

	idx, err := strs(ctx, tx, `SELECT pg_catalog.pg_get_indexdef(i.indexrelid) ||
			CASE WHEN i.indisvalid AND i.indisready AND i.indislive THEN '' ELSE ' (INVALID)' END
		FROM pg_catalog.pg_index i WHERE i.indrelid = $1 ORDER BY 1`, rel.oid)
	if err != nil {
		return nil, nil, err
	}
	problems = append(problems, setProblems("index", idx, spec.indexes)...)

	trg, err := strs(ctx, tx, `SELECT tgname::text FROM pg_catalog.pg_trigger WHERE tgrelid = $1 AND NOT tgisinternal ORDER BY 1`, rel.oid)
	if err != nil {
		return nil, nil, err
	}
	for _, t := range trg {
		problems = append(problems, "it has a trigger "+t)
	}
	return rel, problems, nil
}

// nextvalRE is a serial column's default as columnsSig compares it;
// ownsSequence then checks which sequence it calls.
var nextvalRE = regexp.MustCompile(`^nextval\('[^']+'::regclass\)$`)

func columnsSig(cols []column) string {
	var b strings.Builder
	for _, c := range cols {
		def := c.def
		if def == serialDefault || nextvalRE.MatchString(def) {
			def = "nextval"
		}
		fmt.Fprintf(&b, "%s %s %v %s\n", c.name, c.typ, c.notNull, def)
	}
	return b.String()
}

// showColumn prints a column's type, NOT NULL and default.
func showColumn(c column) string {
	s := c.typ
	if c.notNull {
		s += " NOT NULL"
	}
	if c.def != "" {
		s += " DEFAULT " + showDefault(c.def)
	}
	return s
}

func showDefault(def string) string {
	if def == serialDefault {
		return "nextval() of its own sequence"
	}
	if def == "" {
		return "none"
	}
	return def
}

func columnProblems(got, want []column) []string {
	var out []string
	byName := map[string]column{}
	for _, c := range got {
		byName[c.name] = c
	}
	wantNames := map[string]bool{}
	for _, w := range want {
		wantNames[w.name] = true
		g, ok := byName[w.name]
		if !ok {
			out = append(out, "column "+w.name+" is missing")
			continue
		}
		gs, ws := columnsSig([]column{g}), columnsSig([]column{w})
		if gs != ws {
			out = append(out, fmt.Sprintf("column %s is %s, want %s", w.name, showColumn(g), showColumn(w)))
		}
	}
	for _, g := range got {
		if !wantNames[g.name] {
			out = append(out, "it has an extra column "+g.name)
		}
	}
	if len(out) == 0 {
		out = append(out, "its columns are in another order")
	}
	return out
}

// ownsSequence says the default is nextval() of a sequence in our schema
// owned by the column, as bigserial makes it.
func ownsSequence(ctx context.Context, tx pgx.Tx, table, col, def string) (bool, error) {
	var seq *string
	err := tx.QueryRow(ctx, `SELECT pg_catalog.pg_get_serial_sequence($1, $2)`,
		pgx.Identifier{Schema, table}.Sanitize(), col).Scan(&seq)
	if err != nil {
		return false, err
	}
	return seq != nil && strings.HasPrefix(*seq, Schema+".") &&
		def == "nextval('"+*seq+"'::regclass)", nil
}

func setProblems(what string, got, want []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			out = append(out, fmt.Sprintf("%s %q is missing", what, w))
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			out = append(out, fmt.Sprintf("%s %q is not pgbenchx's", what, g))
		}
	}
	return out
}

func strs(ctx context.Context, tx pgx.Tx, sql string, args ...any) ([]string, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func relkindName(k string) string {
	switch k {
	case "r":
		return "table"
	case "p":
		return "partitioned table"
	case "v":
		return "view"
	case "m":
		return "materialized view"
	case "f":
		return "foreign table"
	case "S":
		return "sequence"
	case "i", "I":
		return "index"
	case "c":
		return "composite type"
	}
	return "relation of kind " + k
}
