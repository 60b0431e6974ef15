#!/bin/sh
# malloc_info's XML parses with a standard XML parser and the JSON of
# hakmem_stats_json with python3's json, and both say what hk_stats_dump
# holds: 1000 blocks of 100 bytes and 100 of 4000 in their classes, three
# large blocks of 1 MiB; the per-class totals of each add up to its
# small-block total; the counters are absent where they are not built in;
# the registry's 64 MiB address reservation is reported apart (JSON
# "reserved", <hakmem reserved=>), never as memory (mapped, retained,
# malloc_info's <system>/<aspace>).
# Needs python3 (skips without it).
set -u
prog="${abs_top_builddir:-.}/tests/integration/hk_stats_dump"
[ -x "$prog" ] || { echo "hk_stats_dump not built"; exit 99; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 is not installed (needed to parse XML and JSON)"; exit 77; }
dir=$(mktemp -d) || exit 99
trap 'rm -rf "$dir"' EXIT
"$prog" "$dir/info.xml" "$dir/stats.json" || { echo "FAIL: hk_stats_dump failed"; exit 1; }
# The parser runs without the library: it judges the documents only.
env -u LD_PRELOAD python3 - "$dir/info.xml" "$dir/stats.json" <<'PY'
import json, sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
doc = json.load(open(sys.argv[2]))
fail = []
def check(cond, msg):
    if not cond:
        fail.append(msg)
check(root.tag == "malloc", "root element is %s" % root.tag)
heap = root.find("heap")
check(heap is not None, "no <heap>")
sizes = heap.find("sizes").findall("size") if heap is not None else []
by_to = {int(s.get("to")): s for s in sizes}
g = doc["gauges"]
for key in ("allocated", "active", "resident", "mapped", "committed", "cached", "retained", "reserved",
            "large_live", "large_live_bytes", "large_cached", "ss_live", "slabs", "heaps_live"):
    check(isinstance(g.get(key), int), "gauge %s missing" % key)
classes = doc["classes"]
check(len(classes) > 8 and classes[-1]["block_size"] == 32768 and
      all(a["block_size"] < b["block_size"] for a, b in zip(classes, classes[1:])), "classes: %s" % classes[:3])
def cls_for(n):
    for c in classes:
        if c["block_size"] >= n:
            return c
debug = doc["variant"] == "debug"
for size, count in ((100, 1000), (4000, 100)):
    c = cls_for(size + 16 if debug else size)
    check(c["blocks_in_use"] >= count, "class %d holds %d blocks, the program %d" % (c["block_size"], c["blocks_in_use"], count))
    s = by_to.get(c["block_size"])
    check(s is not None and int(s.get("count")) >= count, "XML: no <size to=%d> with %d blocks" % (c["block_size"], count))
mmap = [t for t in root.findall("total") if t.get("type") == "mmap"]
check(len(mmap) == 1 and int(mmap[0].get("count")) >= 3 and int(mmap[0].get("size")) >= 3 << 20,
      "XML: <total type=mmap> should count the 3 large blocks")
check(g["large_live"] >= 3 and g["large_live_bytes"] >= 3 << 20, "JSON: large blocks %d / %d bytes" % (g["large_live"], g["large_live_bytes"]))
small = sum(int(s.get("total")) for s in sizes)
rest = [t for t in root.findall("total") if t.get("type") == "rest"]
check(len(rest) == 1 and int(rest[0].get("size")) == small, "XML: <total type=rest> differs from its <size> totals %d" % small)
# Two snapshots (stdio's buffers come and go between them): close, not equal.
jsmall = sum(c["blocks_in_use"] * c["block_size"] for c in classes)
check(abs(small - jsmall) <= 64 << 10, "XML small blocks %d, JSON %d" % (small, jsmall))
check(jsmall == g["allocated"] - g["large_live_bytes"], "JSON: classes %d + large %d != allocated %d" % (jsmall, g["large_live_bytes"], g["allocated"]))
check(g["allocated"] >= 1000 * 100 + 100 * 4000 + (3 << 20), "allocated %d below what is held" % g["allocated"])
MiB = 1 << 20
check(g.get("reserved", 0) >= 64 * MiB, "JSON: reserved %s, the registry reserves 64 MiB" % g.get("reserved"))
check(g["mapped"] < 32 * MiB and g["retained"] < 32 * MiB,
      "JSON: mapped %d, retained %d for a program holding 4 MiB: the reservation counted as memory?" % (g["mapped"], g["retained"]))
hk = root.find("hakmem")
check(hk is not None and int(hk.get("reserved", -1)) == g.get("reserved") and int(hk.get("mapped")) < 32 * MiB,
      "XML: <hakmem reserved= mapped=> %s" % (hk.attrib if hk is not None else None))
for el in root.iter():
    if el.tag in ("system", "aspace"):
        check(int(el.get("size")) < 32 * MiB, "XML: <%s type=%s size=%s>: the reservation counted as memory?" % (el.tag, el.get("type"), el.get("size")))
check(("counters" in doc) == doc["counters_built_in"], "counters present=%s, built in=%s" % ("counters" in doc, doc["counters_built_in"]))
for f in fail:
    print("FAIL:", f)
print("parsed: %d size elements, allocated %d, variant %s" % (len(sizes), g["allocated"], doc["variant"]))
sys.exit(1 if fail else 0)
PY
