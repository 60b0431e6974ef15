#!/bin/sh
# E.29 needs a variant with the LEAN code (configure --enable-lean or
# --enable-debug); in this build there is none.
echo "SKIP: the madvise guard is LEAN code; neither --enable-lean nor --enable-debug was given"
exit 77
