#!/usr/bin/env python3
"""A/B two kyoto-bench binaries (or one binary under two environments) in paired turns.

    Benchmarks/Scripts/pair-ab.py BIN_A BIN_B MODE WORKLOAD [TURNS] [--env-a K=V] [--env-b K=V]

Starts `BIN --mode MODE --serve` for A and B (the protocol of Sources/KyotoBench/Paired.swift), runs 3 warm-up
turns, then TURNS turns (default 150) in which A and B each run one iteration of WORKLOAD (the order
alternates), and prints both medians (ns per iteration / 1000, i.e. ns per op for 1,000-op workloads) and the
median and quartiles of the per-turn ratios A/B (> 1: B is faster). Two copies of one binary give 0.97-1.03.
"""
import argparse
import os
import statistics
import subprocess


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("mode")
    ap.add_argument("workload")
    ap.add_argument("turns", nargs="?", type=int, default=150)
    ap.add_argument("--env-a", action="append", default=[])
    ap.add_argument("--env-b", action="append", default=[])
    args = ap.parse_args()

    def start(binary, extra):
        env = dict(os.environ)
        for kv in extra:
            k, v = kv.split("=", 1)
            env[k] = v
        return subprocess.Popen(
            [binary, "--mode", args.mode, "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)

    procs = [start(args.a, args.env_a), start(args.b, args.env_b)]

    def iterate(p):
        p.stdin.write(args.workload + "\n")
        p.stdin.flush()
        line = p.stdout.readline()
        if not line:
            raise SystemExit("pair-ab: a child ended without answering (unknown workload?)")
        return int(line.split()[0])

    for _ in range(3):
        for p in procs:
            iterate(p)
    ta, tb = [], []
    for i in range(args.turns):
        first, second = (0, 1) if i % 2 == 0 else (1, 0)
        r = {first: iterate(procs[first]), second: iterate(procs[second])}
        ta.append(r[0])
        tb.append(r[1])
    for p in procs:
        p.stdin.close()
        if p.wait() != 0:
            raise SystemExit("pair-ab: a child failed")
    ratios = sorted(x / y for x, y in zip(ta, tb))
    q = lambda f: ratios[min(len(ratios) - 1, int(f * len(ratios)))]
    print("A median %.0f  B median %.0f  A/B median %.3f (quartiles %.3f-%.3f) over %d turns" % (
        statistics.median(ta) / 1000, statistics.median(tb) / 1000, statistics.median(ratios), q(0.25), q(0.75),
        args.turns))


if __name__ == "__main__":
    main()
