#!/usr/bin/env python3
"""Per-iteration view of one runtime workload: Kyoto (one mode) against Swift's default executor, paired.

    Benchmarks/Scripts/pair-deciles.py BIN [TURNS] [WORKLOAD] [KYOTO_MODE]

Starts `BIN --mode KYOTO_MODE --serve` (default kyoto-global) and `BIN --mode swift-default --serve` (the
protocol of Sources/KyotoBench/Paired.swift), runs 3 warm-up turns, then TURNS turns (default 100) of WORKLOAD
(default ping_pong), alternating which runs first. Prints the deciles of each runtime's per-iteration time
(ns per op for 1,000-op workloads), the deciles of the per-turn ratios default/Kyoto, and Kyoto's fastest,
median and slowest iterations with the worker parks and stolen jobs of each, to see what the fast and slow
iterations do differently. `pair-ab.py` compares two Kyoto builds; this compares Kyoto with the default.
"""
import subprocess
import sys

binary = sys.argv[1]
turns = int(sys.argv[2]) if len(sys.argv) > 2 else 100
workload = sys.argv[3] if len(sys.argv) > 3 else "ping_pong"
kyoto_mode = sys.argv[4] if len(sys.argv) > 4 else "kyoto-global"

procs = [
    subprocess.Popen([binary, "--mode", m, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=subprocess.DEVNULL, text=True)
    for m in (kyoto_mode, "swift-default")
]


def iterate(p):
    """One iteration; the reply is `ns allocs parks steals`."""
    p.stdin.write(workload + "\n")
    p.stdin.flush()
    line = p.stdout.readline()
    if not line:
        raise SystemExit("pair-deciles: a child ended without answering (unknown workload?)")
    return [int(x) for x in line.split()]


for _ in range(3):
    for p in procs:
        iterate(p)
rows = []
for i in range(turns):
    order = (0, 1) if i % 2 == 0 else (1, 0)
    reply = {}
    for k in order:
        reply[k] = iterate(procs[k])
    rows.append((reply[0], reply[1]))
for p in procs:
    p.stdin.close()
    if p.wait() != 0:
        raise SystemExit("pair-deciles: a child failed")

FRACTIONS = (0, .1, .25, .5, .75, .9, 1)


def deciles(values, digits=0):
    values = sorted(values)
    return [round(values[int(f * (len(values) - 1))], digits) for f in FRACTIONS]


print("fractions:            ", list(FRACTIONS))
print("%-22s" % (kyoto_mode + " (ns/op):"), deciles(a[0] / 1000 for a, _ in rows))
print("%-22s" % "swift-default (ns/op):", deciles(b[0] / 1000 for _, b in rows))
print("%-22s" % "default/kyoto:", deciles((b[0] / a[0] for a, b in rows), 2))
kyoto = sorted((a[0] // 1000, a[2], a[3]) for a, _ in rows)
middle = len(kyoto) // 2
print("kyoto (ns/op, parks, steals), fastest:", kyoto[:6])
print("                               median: ", kyoto[middle - 3:middle + 3])
print("                               slowest:", kyoto[-6:])
