// Package script parses and evaluates pgbench custom scripts, the files a
// user passes to "pgbench -f FILE", so that pgbenchx can replay workloads
// people already have without asking them to rewrite anything.
//
// A script is one "transaction": SQL statements and backslash meta-commands
// run in file order. Parse compiles the text once; every client then gets
// its own State (its variables and random source) from Script.NewState.
//
// # Supported
//
// SQL statements end at a semicolon outside quotes, quoted identifiers,
// dollar quotes and comments; they may span lines, and the last one may omit
// its semicolon, as in pgbench. A reference :name becomes a positional
// parameter: pgbenchx runs statements through the extended protocol, so
// Step.SQL holds the statement with $1..$n, numbered in order of first
// appearance, and State.AppendArgs produces the values as text. Unlike
// pgbench, which numbers every occurrence, a variable used twice reuses its
// $n, so each value is sent once; should its uses need different types,
// PostgreSQL reports "inconsistent types deduced for parameter" and an
// explicit cast settles it. "::" casts and colons inside quotes or comments
// are not variables. State.Literal produces the statement with values
// spelled inline for the simple protocol (-M simple).
//
// Meta-commands start with a backslash and run to the end of the line; a
// backslash right before the newline continues them. Two are supported:
//
//	\set name expression
//	\sleep number [us | ms | s]      (also "\sleep 10ms" and "\sleep :var ms")
//
// Expressions follow PostgreSQL 15's pgbench: integer (int64) and double
// constants, true, false and null, :variables, the operators
// + - * / % (integer division truncates, as in C), unary + - ~,
// = <> != < <= > >=, & | # << >>, AND OR NOT, IS [NOT] NULL|TRUE|FALSE,
// ISNULL, NOTNULL, CASE WHEN ... THEN ... [ELSE ...] END, and the functions
// abs, debug, double, exp, greatest, hash, hash_fnv1a, hash_murmur2, int,
// least, ln, mod, permute, pi, pow, power, random, random_exponential,
// random_gaussian, random_zipfian and sqrt. Operator precedence, null
// propagation, type coercion and the error conditions (integer overflow,
// division by zero, empty random range, distribution parameter limits) are
// pgbench's, so a script behaves here as it does there. The distributions
// are pgbench's algorithms driven by the caller's math/rand/v2 source, so
// they have the same shape but not the same numbers for a given seed;
// hash and permute do match pgbench bit for bit.
//
// debug(x) returns x without printing: a benchmark's hot loop must not
// write to stderr.
//
// # Rejected
//
// Parse fails, naming the command and line, on what pgbenchx cannot run
// faithfully: \gset and \aset (query results are not read back into
// variables), \if \elif \else \endif (no conditional execution),
// \shell and \setshell (no shell commands in a load generator),
// \startpipeline \syncpipeline \endpipeline (no pipeline mode),
// compound statements joined with \; (a prepared statement is one
// statement), positional $n parameters written in the SQL itself (they would
// clash with the numbering of :variables), and the long-removed \setrandom.
// A script without any SQL statement is an error too.
package script
