"""Golden oracle: runs CPython's real tracemalloc over the traces given as
JSON (argv[1]) and prints the results as JSON on stdout.

Input: {"cases": [{"old": [[size, count, [[file, line], ...]], ...], "new": [...],
                   "queries": [{"op": "statistics"|"compare"|"format"|"fnmatch", ...}]}],
        "fnmatch": [[name, pattern], ...]}
A trace group of count c becomes c raw traces (domain, size, frames, nframe).
memtrace labels a 'traceback' key by its allocating (most recent) frame, so
for that key the label printed here is str(stat.traceback[-1]).
"""
import fnmatch
import json
import sys
import tracemalloc
from tracemalloc import Filter, Snapshot


def snap(groups):
    traces = []
    for size, count, frames in groups:
        fr = tuple((f, l) for f, l in frames)
        for _ in range(count):
            traces.append((0, size, fr, len(fr)))
    return Snapshot(traces, 16)


def filt(snapshot, filters):
    fs = [Filter(f["inclusive"], f["pattern"], f.get("lineno"), f["all_frames"]) for f in filters]
    return snapshot.filter_traces(fs)


def label(stat, key):
    s = str(stat)
    if key == "traceback":
        s = str(stat.traceback[-1]) + s[len(str(stat.traceback)):]
    return s


def main():
    data = json.load(open(sys.argv[1]))
    out = {"cases": [], "fnmatch": [fnmatch.fnmatchcase(n, p) for n, p in data.get("fnmatch", [])]}
    for case in data["cases"]:
        res = []
        old = snap(case["old"])
        new = snap(case["new"])
        for q in case["queries"]:
            o = filt(old, q.get("filters", []))
            n = filt(new, q.get("filters", []))
            if q["op"] == "statistics":
                res.append([label(s, q["key"]) for s in o.statistics(q["key"], q["cumulative"])])
            elif q["op"] == "compare":
                res.append([label(s, q["key"]) for s in n.compare_to(o, q["key"], q["cumulative"])])
            elif q["op"] == "format":
                lines = []
                for s in o.statistics("traceback")[:q["top"]]:
                    lines.append("%s memory blocks: %.1f KiB" % (s.count, s.size / 1024))
                    lines.extend(s.traceback.format(limit=q["limit"], most_recent_first=q["most_recent_first"]))
                res.append(lines)
            elif q["op"] == "pretty":
                lines = []
                top = o.statistics("lineno")
                limit = q["limit"]
                import linecache, os
                lines.append("Top %s lines" % limit)
                for index, stat in enumerate(top[:limit], 1):
                    frame = stat.traceback[0]
                    filename = os.sep.join(frame.filename.split(os.sep)[-2:])
                    lines.append("#%s: %s:%s: %.1f KiB" % (index, filename, frame.lineno, stat.size / 1024))
                    line = linecache.getline(frame.filename, frame.lineno).strip()
                    if line:
                        lines.append('    %s' % line)
                other = top[limit:]
                if other:
                    size = sum(stat.size for stat in other)
                    lines.append("%s other: %.1f KiB" % (len(other), size / 1024))
                total = sum(stat.size for stat in top)
                lines.append("Total allocated size: %.1f KiB" % (total / 1024))
                res.append(lines)
        out["cases"].append(res)
    json.dump(out, sys.stdout)


main()
