#!/bin/sh
# t_man_lint.sh: the man pages (doc/hakmem.1, doc/hakmem.3, doc/rss-trace.1)
# render without a warning: `mandoc -Tlint -W warning` (style notes are not
# counted), or, where mandoc is missing, `groff -mandoc -ww -z` (any
# message counts). Skips (77) with neither.

set -u
src=${abs_top_srcdir:?run through make check}
pages="$src/doc/hakmem.1 $src/doc/hakmem.3 $src/doc/rss-trace.1"

if command -v mandoc >/dev/null 2>&1; then
  tool=mandoc
elif command -v groff >/dev/null 2>&1; then
  tool=groff
else
  echo "SKIP: neither mandoc nor groff is installed (Debian: apt-get install mandoc)"
  exit 77
fi

fail=0
for p in $pages; do
  [ -f "$p" ] || { echo "FAIL: $p is missing"; fail=1; continue; }
  if [ $tool = mandoc ]; then
    # mandoc also notes an outdated system manual database: not the page's.
    out=$(mandoc -Tlint -W warning "$p" 2>&1 | grep -v 'mandoc\.db')
    mandoc -Tlint -W warning "$p" >/dev/null 2>&1
    rc=$?
    [ $rc -lt 2 ] && [ -z "$out" ] && rc=0
  else
    out=$(groff -mandoc -ww -z "$p" 2>&1)
    rc=0
    [ -z "$out" ] || rc=1
  fi
  if [ $rc -ne 0 ] || [ -n "$out" ]; then
    echo "FAIL: $tool finds problems in ${p#$src/}:"
    echo "$out"
    fail=1
  else
    echo "${p#$src/}: clean ($tool)"
  fi
done
exit $fail
