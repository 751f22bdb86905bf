"""Allocation-heavy Python for the memtrace benchmark.

Run with PYTHONMALLOC=malloc so that every object allocation reaches malloc:
builds a dict of lists and strings, churns short-lived tuples and strings,
then drops everything.  Usage: python3 alloc_heavy.py [N]  (default 40000)."""
import sys


def build(n):
    table = {}
    for i in range(n):
        key = "key-%d" % i
        table[key] = [i, key * 3, (i, float(i)), {"id": i}]
    return table


def churn(n):
    total = 0
    for i in range(n):
        t = tuple(range(i % 12))
        s = repr(t) + str(i)
        total += len(s.split(","))
    return total


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40000
    table = build(n)
    total = sum(len(v[1]) for v in table.values())
    total += churn(2 * n)
    del table
    print("checksum=%d" % total)


main()
