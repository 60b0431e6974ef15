#!/bin/sh
# t_real_programs.sh: real programs under LD_PRELOAD (CONFORMANCE F.30).
#
# Unit tests exercise what we thought of; real programs exercise what they
# do: ls, sort, bash subshells, python3 threads and dicts, perl, git,
# sqlite3 and a C compile. Each runs once without and once with the library
# preloaded, under `timeout`; stdout, stderr and exit status must match,
# and stderr must not mention hakmem. A program that is not installed is skipped by
# name; if none is installed the whole test is skipped (exit 77).
#
# Run by tests/run-variant, which sets HAKMEM_TEST_LIB and preloads it into
# this shell too; the baselines run with LD_PRELOAD removed.

set -u
lib=${HAKMEM_TEST_LIB:?run through tests/run-variant}
top=${abs_top_builddir:?run through tests/run-variant}
to=${HK_REAL_TIMEOUT:-120}

# Prove the library is in use (fails the test if not).
variant=$(LD_PRELOAD="$lib" "$top/tests/integration/hk_probe") || {
  echo "FAIL: hk_probe: the library is not in use under LD_PRELOAD=$lib"; exit 99; }
echo "library: $lib ($variant)"

work=$(mktemp -d "${TMPDIR:-/tmp}/hk_real.XXXXXX") || exit 99
trap 'rm -rf "$work"' EXIT INT TERM
fails=0 ran=0 skipped=""

# run_case NAME CMD...: compare plain and preloaded runs.
run_case() {
  name=$1; shift
  ran=$((ran + 1))
  ( cd "$work/run.plain" && env -u LD_PRELOAD timeout -k 5 "$to" "$@" ) \
    >"$work/$name.out.plain" 2>"$work/$name.err.plain"
  rc_plain=$?
  ( cd "$work/run.hak" && env LD_PRELOAD="$lib" timeout -k 5 "$to" "$@" ) \
    >"$work/$name.out.hak" 2>"$work/$name.err.hak"
  rc_hak=$?
  ok=1
  # A case that fails without hakmem tests nothing: it is a bug here.
  if [ "$rc_plain" != 0 ]; then
    echo "FAIL: $name: exit status $rc_plain even without hakmem (test bug?):"; ok=0
    head -5 "$work/$name.err.plain"
  fi
  if [ "$rc_plain" != "$rc_hak" ]; then
    echo "FAIL: $name: exit status $rc_hak with hakmem, $rc_plain without"; ok=0
  fi
  if [ "$rc_hak" = 124 ] || [ "$rc_hak" = 137 ]; then
    echo "FAIL: $name: timed out after ${to}s with hakmem"; ok=0
  fi
  if ! cmp -s "$work/$name.out.plain" "$work/$name.out.hak"; then
    echo "FAIL: $name: stdout differs with hakmem:"; ok=0
    diff "$work/$name.out.plain" "$work/$name.out.hak" | head -20
  fi
  if grep -i hakmem "$work/$name.err.hak" >/dev/null; then
    echo "FAIL: $name: stderr mentions hakmem:"; ok=0
    grep -i hakmem "$work/$name.err.hak" | head -5
  fi
  # hakmem prints nothing unless asked (DESIGN 3), and the cases are
  # deterministic: stderr is the same line for line as without it (a
  # warning, a partial line or a message in another wording would pass
  # the grep above).
  if ! cmp -s "$work/$name.err.plain" "$work/$name.err.hak"; then
    echo "FAIL: $name: stderr differs with hakmem:"; ok=0
    diff "$work/$name.err.plain" "$work/$name.err.hak" | head -20
  fi
  if [ $ok = 1 ]; then
    echo "ok: $name (exit $rc_hak)"
  else
    echo "--- $name stderr with hakmem:"; head -20 "$work/$name.err.hak"
    fails=$((fails + 1))
  fi
}

have() { command -v "$1" >/dev/null 2>&1 || { skipped="$skipped $1"; return 1; }; }

# Identical working directories for both runs (git and sqlite write files).
mkdir -p "$work/run.plain" "$work/run.hak"

# ls -lR of a big tree; LC_ALL=C and a fixed time style so output is stable.
if have ls; then
  run_case ls env LC_ALL=C ls -lR --time-style=+%s /usr/include
fi

# sort of a generated file (200k lines): many small allocations, big buffers.
if have sort && have awk; then
  awk 'BEGIN { srand(42); for (i = 0; i < 200000; i++) printf "%08d %s\n", int(rand() * 1e8), i }' \
    >"$work/sort.in"
  run_case sort env LC_ALL=C sort -k1,1n -S 16M "$work/sort.in"
fi

# bash with many subshells, command substitutions and pipelines (forks).
if have bash; then
  cat >"$work/subshells.sh" <<'SH'
total=0
for i in $(seq 1 300); do
  v=$( (echo "$i" | tr 0-9 a-j) ; echo x )
  total=$((total + ${#v}))
  ( a=$(printf '%0200d' "$i"); echo "${#a}" ) >/dev/null
done
arr=(); for i in $(seq 1 2000); do arr+=("item$i"); done
echo "total=$total n=${#arr[@]} last=${arr[1999]}"
SH
  run_case bash bash "$work/subshells.sh"
fi

# python3: threads, dicts, big strings, gc.
if have python3; then
  cat >"$work/py.py" <<'PY'
import threading, hashlib, gc
res = {}
def work(k):
    d = {}
    for i in range(60000):
        d[(k, i)] = str(i) * (i % 7)
    s = sum(len(v) for v in d.values())
    res[k] = (s, hashlib.sha256(repr(sorted(d.items())[:1000]).encode()).hexdigest())
ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
gc.collect()
big = [bytes(i % 251 for i in range(n)) for n in (10, 1000, 100000, 1000000)]
print(sorted(res.items()), [len(b) for b in big])
PY
  run_case python3 python3 "$work/py.py"
fi

# perl: hashes, regexes, sort, string growth.
if have perl; then
  run_case perl perl -e '
    my %h; for my $i (1..200000) { $h{"k$i"} = "v" x ($i % 50); }
    my $s = ""; $s .= "$_," for sort { $a <=> $b } map { length $h{$_} } keys %h;
    my @m = ("abc123def456" x 1000) =~ /(\d+)/g;
    print scalar(keys %h), " ", length($s), " ", scalar(@m), "\n";'
fi

# git: init, add, commit, log in a temporary repository.
if have git; then
  cat >"$work/git.sh" <<'SH'
set -e
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.invalid GIT_COMMITTER_NAME=t \
  GIT_COMMITTER_EMAIL=t@example.invalid GIT_AUTHOR_DATE='2020-01-01T00:00:00Z' \
  GIT_COMMITTER_DATE='2020-01-01T00:00:00Z' HOME=$PWD GIT_CONFIG_NOSYSTEM=1
rm -rf repo && git init -q -b main repo && cd repo
for i in $(seq 1 50); do seq 1 "$((i * 100))" > "f$i.txt"; done
git add . && git commit -q -m first
for i in $(seq 1 2 50); do echo change >> "f$i.txt"; done
git commit -q -am second
git log --format='%H %s' && git diff --stat HEAD~1 | tail -1 && git gc -q && git fsck --no-progress --strict && git count-objects | cut -d' ' -f1
SH
  run_case git sh "$work/git.sh"
fi

# sqlite3: create, insert, index, query.
if have sqlite3; then
  cat >"$work/sql.sql" <<'SQL'
CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c REAL);
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100000)
INSERT INTO t SELECT x, printf('row%08d', x * 7919 % 100003), x / 3.0 FROM n;
CREATE INDEX tb ON t(b);
SELECT count(*), sum(length(b)), max(b), round(avg(c), 3) FROM t;
SELECT b FROM t WHERE b LIKE 'row0000%' ORDER BY b LIMIT 5;
SQL
  run_case sqlite3 sh -c "rm -f db.sqlite && sqlite3 db.sqlite < '$work/sql.sql'"
fi

# A C compile (the compiler driver, cc1, as and ld all preloaded).
if have cc; then
  cat >"$work/prog.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
struct node { struct node *next; char name[24]; };
int main(void) {
    struct node *head = NULL;
    for (int i = 0; i < 1000; i++) {
        struct node *n = malloc(sizeof *n);
        snprintf(n->name, sizeof n->name, "n%d", i);
        n->next = head; head = n;
    }
    int c = 0; while (head) { struct node *n = head->next; c += (int)strlen(head->name); free(head); head = n; }
    printf("%d\n", c);
    return 0;
}
C
  run_case cc sh -c "cc -O2 -Wall -o prog '$work/prog.c' && ./prog"
fi

[ -n "$skipped" ] && echo "skipped (not installed):$skipped"
if [ "$ran" = 0 ]; then
  echo "SKIP: none of the programs is installed"; exit 77
fi
echo "$ran programs run, $fails failed"
[ "$fails" = 0 ]
