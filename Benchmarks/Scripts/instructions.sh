#!/usr/bin/env bash
# Instructions per operation of the runtime workloads, counted by valgrind's callgrind: a figure that does
# not move with the machine's load, for A/B-ing a change whose effect is smaller than the VM's noise.
#
#   Benchmarks/Scripts/instructions.sh [kyoto-bench binary] [workload ...]     (from the repository root)
#
# For each workload and runtime (kyoto-pref, kyoto-global, swift-default) it runs the binary under callgrind
# twice, with A and B timed iterations, and prints (instructions(B) - instructions(A)) / ((B - A) * ops):
# start-up, warm-up and tear-down cancel out. Valgrind runs one thread at a time, so the figures count the
# work on the code paths, not contention or cache misses (a stolen job is rare under valgrind); compare
# them between builds, not with wall-clock times.
#
# valgrind 3.19 cannot read the DWARF 5 debug info the Swift toolchain emits, so the binary is copied
# with its debug info stripped first.
set -euo pipefail

bin=${1:-}
shift || true
if [ -z "$bin" ]; then
    # The two scratch paths the READMEs use, from the repository root.
    for candidate in Benchmarks/.build-bench/release/kyoto-bench Benchmarks/.build/release/kyoto-bench; do
        if [ -x "$candidate" ]; then bin=$candidate; break; fi
    done
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "instructions.sh: no kyoto-bench binary; build it first (swift build -c release --package-path Benchmarks)" \
        "or pass its path" >&2
    exit 1
fi
workloads=("$@")
if [ ${#workloads[@]} -eq 0 ]; then
    workloads=(spawn_many_local spawn_many_remote_idle yield_many ping_pong chained_spawn actor_ping_pong)
fi
command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }

stripped=$(mktemp)
trap 'rm -f "$stripped"' EXIT
strip -g -o "$stripped" "$bin"

# ops per iteration, and the two iteration counts (heavier workloads get fewer).
plan() {
    case $1 in
        spawn_many_local | spawn_many_remote_idle) echo "10000 1 4" ;;
        yield_many) echo "200000 1 2" ;;
        ping_pong | chained_spawn) echo "1000 3 13" ;;
        actor_ping_pong) echo "100000 1 2" ;;
        *) echo "instructions.sh: unknown workload $1" >&2; exit 1 ;;
    esac
}

count() { # mode workload iterations
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$stripped" --mode "$1" --only "$2" \
        --iters "$3" --warmups 1 2>&1 | awk '/Collected/ { print $4 }'
}

printf '| workload | kyoto-pref | kyoto-global | swift-default |\n|---|---:|---:|---:|\n'
for w in "${workloads[@]}"; do
    read -r ops a b <<<"$(plan "$w")"
    row="| $w |"
    for mode in kyoto-pref kyoto-global swift-default; do
        ia=$(count "$mode" "$w" "$a")
        ib=$(count "$mode" "$w" "$b")
        row="$row $(( (ib - ia) / ((b - a) * ops) )) |"
    done
    echo "$row"
done
