package env

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgbenchx/pgbenchx/input"
)

// SyncRule is a synchronous_standby_names rule over an env's standbys:
// FIRST n (names) waits for the first n listed that stream, ANY n
// (names) for any n of them (a quorum).
type SyncRule struct {
	Method string // FIRST or ANY
	Num    int
	Names  []string
}

// String is the rule as synchronous_standby_names takes it; the zero
// rule (asynchronous replication) is "".
func (r SyncRule) String() string {
	if len(r.Names) == 0 {
		return ""
	}
	return fmt.Sprintf("%s %d (%s)", r.Method, r.Num, strings.Join(r.Names, ", "))
}

var syncRE = regexp.MustCompile(`(?i)^\s*(?:(first|any)\s+)?([0-9]+)\s*\(([^()]*)\)\s*$`)

// ParseSync reads --sync: "ANY 1 (standby1, standby2)", "FIRST 1
// (standby1)", "1 (standby1)" (FIRST, as PostgreSQL reads it) or "off"
// (or "") for asynchronous replication. The names are checked against an
// env's standbys by Spec.Validate.
func ParseSync(s string) (SyncRule, error) {
	if t := strings.TrimSpace(strings.ToLower(s)); t == "" || t == "off" {
		return SyncRule{}, nil
	}
	bad := func(why string) error {
		return input.Bad("sync", s, "%s; want ANY n (standby1, standby2), FIRST n (standby1, ...) or off", why)
	}
	m := syncRE.FindStringSubmatch(s)
	if m == nil {
		return SyncRule{}, bad("not a rule")
	}
	r := SyncRule{Method: strings.ToUpper(m[1])}
	if r.Method == "" {
		r.Method = "FIRST"
	}
	r.Num, _ = strconv.Atoi(m[2])
	for _, n := range strings.Split(m[3], ",") {
		n = strings.TrimSpace(n)
		if !standbyRE.MatchString(n) {
			return SyncRule{}, bad(fmt.Sprintf("%q is not a standby's name", n))
		}
		if slices.Contains(r.Names, n) {
			return SyncRule{}, bad(n + " named twice")
		}
		r.Names = append(r.Names, n)
	}
	if r.Num < 1 || r.Num > len(r.Names) {
		return SyncRule{}, bad(fmt.Sprintf("%d of %d standbys", r.Num, len(r.Names)))
	}
	return r, nil
}

// ParseSyncs reads a list of rules, as matrix --sync takes them: commas
// outside parentheses separate them, e.g. off,"ANY 1 (standby1, standby2)".
// A rule given twice is refused.
func ParseSyncs(s string) ([]SyncRule, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil // none given: the env's own
	}
	var out []SyncRule
	for _, item := range input.SplitList(s) {
		if item == "" {
			return nil, input.Bad("sync", s, "an empty rule between commas; want rules separated by commas, e.g. off,\"ANY 1 (standby1, standby2)\"")
		}
		r, err := ParseSync(item)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(out, func(o SyncRule) bool { return o.String() == r.String() }) {
			return nil, input.Bad("sync", s, "%s given twice; want distinct rules, e.g. off,\"ANY 1 (standby1, standby2)\"", orOff(r.String()))
		}
		out = append(out, r)
	}
	return out, nil
}

// For is the rule on an env of n standbys: the names it lacks left out
// and Num no larger than the names left; with none left, asynchronous.
// A matrix comparing 1 and 2 standbys under ANY 1 (standby1, standby2)
// gives its 1-standby cells ANY 1 (standby1).
func (r SyncRule) For(standbys int) SyncRule {
	if len(r.Names) == 0 {
		return r
	}
	out := SyncRule{Method: r.Method, Num: r.Num}
	for _, n := range r.Names {
		if i, _ := strconv.Atoi(strings.TrimPrefix(n, "standby")); i <= standbys {
			out.Names = append(out.Names, n)
		}
	}
	if len(out.Names) == 0 {
		return SyncRule{}
	}
	out.Num = min(out.Num, len(out.Names))
	return out
}

// checkNames refuses names the env will not have.
func (r SyncRule) checkNames(standbys int) error {
	for _, n := range r.Names {
		if i, _ := strconv.Atoi(strings.TrimPrefix(n, "standby")); i > standbys {
			return input.Bad("sync", r.String(), "this env has standby1..standby%d", standbys)
		}
	}
	return nil
}

// AfterFailover is the rule for the new primary: the promoted node
// replaced by the remaining standbys not listed yet, and n no larger than
// the names left, so that commits do not wait for a standby that is gone.
// No name left gives the zero rule: asynchronous.
func (r SyncRule) AfterFailover(promoted string, remaining []string) SyncRule {
	if len(r.Names) == 0 {
		return r
	}
	out := SyncRule{Method: r.Method, Num: r.Num}
	for _, n := range r.Names {
		if n != promoted {
			out.Names = append(out.Names, n)
			continue
		}
		for _, s := range remaining {
			if !slices.Contains(r.Names, s) && !slices.Contains(out.Names, s) {
				out.Names = append(out.Names, s)
			}
		}
	}
	out.Num = min(out.Num, len(out.Names))
	if len(out.Names) == 0 {
		return SyncRule{}
	}
	return out
}

// Only is the rule over the standbys in names alone, n no larger than
// those left; none left: asynchronous.
func (r SyncRule) Only(names []string) SyncRule {
	out := SyncRule{Method: r.Method, Num: r.Num}
	for _, n := range r.Names {
		if slices.Contains(names, n) {
			out.Names = append(out.Names, n)
		}
	}
	if len(out.Names) == 0 {
		return SyncRule{}
	}
	out.Num = min(out.Num, len(out.Names))
	return out
}

// ErrSyncReset is wrapped by a SetSync that gave up on its rule and set
// synchronous_standby_names back to off.
var ErrSyncReset = errors.New("reset to off (asynchronous)")

// syncWait bounds the wait for standbys to become synchronous.
const syncWait = 30 * time.Second

// setSync gives the primary the rule (ALTER SYSTEM and a reload) and,
// for a rule, waits until enough of its standbys are synchronous that a
// commit can be acknowledged. Standbys must stream first: set before,
// the rule would make the standbys' own builds wait for themselves.
func setSync(ctx context.Context, dsn string, rule SyncRule) error {
	ctx, cancel := context.WithTimeout(ctx, syncWait)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// ALTER SYSTEM takes no parameters; the rule is made of names
	// ParseSync checked, quoted all the same.
	lit := "'" + strings.ReplaceAll(rule.String(), "'", "''") + "'"
	if _, err := conn.Exec(ctx, `ALTER SYSTEM SET synchronous_standby_names = `+lit); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
		return err
	}
	err = poll(ctx, syncWait, "synchronous_standby_names "+orOff(rule.String())+" in effect", nil, func() (bool, error) {
		var setting string
		var syncs int
		err := conn.QueryRow(ctx, `SELECT current_setting('synchronous_standby_names'),
			(SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum'))::int`).Scan(&setting, &syncs)
		if err != nil {
			return false, err
		}
		return setting == rule.String() && syncs >= rule.Num, nil
	})
	if err != nil && len(rule.Names) > 0 {
		// A rule too few standbys can meet makes every commit wait
		// forever: back to asynchronous, and say so.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, rerr := conn.Exec(rctx, `ALTER SYSTEM RESET synchronous_standby_names`)
		if rerr == nil {
			_, rerr = conn.Exec(rctx, `SELECT pg_reload_conf()`)
		}
		if rerr != nil {
			return fmt.Errorf("%w; resetting it to off failed too: %v (commits may wait)", err, rerr)
		}
		return fmt.Errorf("%w; %w so that commits do not wait", err, ErrSyncReset)
	}
	return err
}

func orOff(s string) string {
	if s == "" {
		return "off"
	}
	return s
}

func (lc *localControl) SetSync(ctx context.Context, rule SyncRule) error {
	stateMu.Lock()
	p := lc.c.Primary
	stateMu.Unlock()
	if err := setSync(ctx, socketDSN(lc.c, &p), rule); err != nil {
		return fmt.Errorf("%s: synchronous_standby_names %s: %w", p.Name, orOff(rule.String()), err)
	}
	stateMu.Lock()
	defer stateMu.Unlock()
	lc.c.Sync = rule.String()
	return lc.save()
}
