#!/bin/sh
# The layer rule of src/boxes/README, checked against the code: every box
# lives in a folder that README lists, and a file includes box headers only
# from its own folder or from folders listed below it; the include graph
# of the boxes (a .c and its .h are one box) has no cycle. Needs awk and
# tsort (POSIX, coreutils), nothing built.
set -u
top="${abs_top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}"
boxes="$top/src/boxes"
edges="${TMPDIR:-/tmp}/hk-layers.$$"
trap 'rm -f "$edges"' EXIT

# README lists the layer folders top down, each on a line of its own that
# starts with four spaces and the folder's name and a slash.
layers=$(sed -n 's|^    \([a-z][a-z0-9_]*\)/ .*|\1|p' "$boxes/README")
[ -n "$layers" ] || { echo "FAIL: src/boxes/README lists no layer folders"; exit 1; }
echo "layers, top down:" $layers

fail=0
for d in "$boxes"/*/; do
  d=$(basename "$d")
  echo "$layers" | grep -qx "$d" || { echo "FAIL: src/boxes/$d/ is not listed in src/boxes/README"; fail=1; }
done
ls "$boxes"/*.c "$boxes"/*.h >/dev/null 2>&1 && { echo "FAIL: a box outside the layer folders:" "$boxes"/*.[ch]; fail=1; }

# One line per include of a box header: "from-folder from-box to-folder to-box".
awk -v layers="$layers" -v edges="$edges" '
  BEGIN { n = split(layers, l, "\n"); for (i = 1; i <= n; i++) rank[l[i]] = n - i }  # bottom = 0
  FNR == 1 { np = split(FILENAME, p, "/"); dir = p[np - 1]; box = p[np]; sub(/\.[ch]$/, "", box) }
  /^[ \t]*#[ \t]*include[ \t]*"/ {
    inc = $0; sub(/^[^"]*"/, "", inc); sub(/".*$/, "", inc)
    if (inc !~ /\//) {
      if (inc ~ /_box\.h$|^superslab_stats\.h$/) { print FILENAME ": box header without its folder: " inc; bad = 1 }
      next
    }
    split(inc, q, "/"); to = q[1]; tobox = q[2]; sub(/\.h$/, "", tobox)
    if (!(to in rank)) { print FILENAME ": includes " inc " from a folder README does not list"; bad = 1; next }
    if (rank[to] > rank[dir]) { print FILENAME ": includes " inc ": " dir "/ may not include from " to "/ above it"; bad = 1 }
    if (to "/" tobox != dir "/" box) print dir "/" box, to "/" tobox > edges
  }
  END { exit bad }
' "$boxes"/*/*.c "$boxes"/*/*.h || fail=1

touch "$edges"
if ! tsort "$edges" >/dev/null 2>"$edges.err"; then
  echo "FAIL: the boxes include each other in a circle:"; cat "$edges.err"; fail=1
fi
rm -f "$edges.err"
[ $fail -eq 0 ] && echo "ok: $(wc -l < "$edges") includes between boxes, all downward or within a folder, no circle"
exit $fail
