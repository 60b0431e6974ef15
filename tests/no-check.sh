#!/bin/sh
# tests/no-check.sh: stands in for the whole suite when configure did not
# find the Check framework, so that `make check` fails instead of passing
# with nothing run.
echo "The Check framework was not found by configure: no test was built." >&2
echo "Install it (Debian: apt-get install check) and re-run configure." >&2
exit 99
