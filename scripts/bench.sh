#!/usr/bin/env bash
# The benchmarks of BENCHMARKS.md: a release build, then each scenario RUNS times against our
# server and against Janus's videoroom (issue #3), alternating (ours, Janus, ours, Janus...) so
# that drift of the machine hits both. Each run gets a fresh server (a fresh SQLite) or a fresh
# Janus. Everything runs in network namespaces that hold only `lo` and one veth pair
# (scripts/janus-host.sh): our server and the generator on 127.0.0.1 in one, Janus on
# 10.77.0.1 in the other, the generator's side of the pair on 10.77.0.2. No traffic leaves the
# machine. Prints medians (min-max) per target as Markdown tables, then ours beside Janus with
# the ratio ours / Janus; every run's JSON report, table and logs stay in $OUT/{roundtable,janus}.
# Needs root (for the namespaces); installs Janus if missing.
#
#   scripts/bench.sh                           # all four scenarios, 3 runs each per target
#   RUNS=5 scripts/bench.sh room10             # one scenario, 5 runs per target
#   TARGETS=roundtable scripts/bench.sh        # ours only
#   BASE=d47afc1 TARGETS="roundtable roundtable-base" scripts/bench.sh room10 skillshare40
#       # this checkout against an earlier commit, in alternating pairs (the same generator)
#   TARGETS="roundtable roundtable-sansio" scripts/bench.sh   # the generator's two clients
#   TARGETS="roundtable roundtable-record" scripts/bench.sh skillshare40
#       # recording everyone (loadgen --record) against recording off, in alternating pairs
#   PIN=0 scripts/bench.sh room10              # server and generator not pinned to a core each
#   LOADGEN_ARGS="--duration 3s" RUNS=1 OUT=/tmp/smoke scripts/bench.sh room10   # a smoke test
#   LOADGEN_NICE=19 LOADGEN_ARGS="--video-kbps 2400" TARGETS=roundtable scripts/bench.sh rooms
#       # the generator at the lowest priority, so that it never delays the server
#
# By default (PIN=1) the server runs on core 0 and the generator on core 1 (`taskset`), so the
# latency the server adds is not the generator taking the server's core. PIN=0 lets the kernel
# place both.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
PIN=${PIN:-1}
OUT=${OUT:-target/bench}
TARGETS=${TARGETS:-roundtable janus}
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(room10 rooms skillshare40 joinstorm)

CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --release -p roundtable -p roundtable-loadgen
if [[ " $TARGETS " == *" roundtable-base "* ]]; then
  # The server at $BASE, built in a worktree of its own; the generator is this checkout's.
  : "${BASE:?set BASE to the commit to compare with}"
  base_src="$OUT/base-src"
  [ -d "$base_src" ] || git worktree add --detach "$base_src" "$BASE"
  git -C "$base_src" checkout -q --detach "$BASE"
  CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1} cargo build --release -p roundtable \
    --manifest-path "$base_src/Cargo.toml" --target-dir "$OUT/base-target"
  echo "roundtable-base: $(git -C "$base_src" rev-parse --short HEAD)" >"$OUT/base.txt"
fi
for target in $TARGETS janus; do mkdir -p "$OUT/$target"; done
{ echo "nproc: $(nproc)"; lscpu | head -20; echo "kernel: $(uname -r)"; } >"$OUT/machine.txt"
command -v curl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y curl >/dev/null
command -v python3 >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y python3 >/dev/null

export JANUS_DIR="$OUT/janus"
scripts/janus-host.sh up
trap 'scripts/janus-host.sh down' EXIT

ip netns exec "${LOAD_NS:-rt-load}" bash -s "$OUT" "$RUNS" "$TARGETS" "${LOADGEN_ARGS:-}" \
  "${LOADGEN_NICE:-0}" "$PIN" "${scenarios[@]}" <<'INNER'
set -euo pipefail
out=$1 runs=$2 targets=$3 nice=$5 pin=$6
read -ra extra <<<"$4"
shift 6
server_cpu=() loadgen_cpu=()
if [ "$pin" = 1 ]; then
  server_cpu=(taskset -c 0) loadgen_cpu=(taskset -c 1)
fi
run_roundtable() {
  local scenario=$1 run=$2 data server dir=${3:-roundtable} client=${4:-webrtc}
  local bin=${5:-target/release/roundtable} more=${6:-}
  data=$(mktemp -d)
  ${server_cpu[@]+"${server_cpu[@]}"} "$bin" --data-dir "$data" --admin-token bench \
    >"$out/$dir/$scenario-$run.server.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do
    curl -sf http://127.0.0.1:8080/healthz >/dev/null && break
    sleep 0.1
  done
  ${loadgen_cpu[@]+"${loadgen_cpu[@]}"} nice -n "$nice" target/release/roundtable-loadgen \
    --server http://127.0.0.1:8080 --admin-token bench \
    --scenario "$scenario" --server-pid "$server" --json "$out/$dir/$scenario-$run.json" \
    --client "$client" $more ${extra[@]+"${extra[@]}"} >"$out/$dir/$scenario-$run.txt" 2>"$out/$dir/$scenario-$run.progress.log"
  kill "$server"
  wait "$server" 2>/dev/null || true
  # What a recording run wrote (size and path of each file), before the folder goes.
  if [ -d "$data/recordings" ]; then
    find "$data/recordings" -type f -printf '%s %P\n' | sort -k2 >"$out/$dir/$scenario-$run.files.txt"
  fi
  rm -rf "$data"
}
# The server at $BASE (built above), under this checkout's generator.
run_roundtable-base() {
  run_roundtable "$1" "$2" roundtable-base webrtc "$out/base-target/release/roundtable"
}
# Our server under the generator's sans-IO client (`--client sansio`), which costs the
# generator less CPU; Janus can only be loaded with the default client.
run_roundtable-sansio() {
  run_roundtable "$1" "$2" roundtable-sansio sansio
}
# Our server recording every participant: all consent, and each room's first participant is
# its facilitator and starts recording (`--record`). Files go under the run's data folder.
run_roundtable-record() {
  run_roundtable "$1" "$2" roundtable-record webrtc target/release/roundtable --record
}
run_janus() {
  local scenario=$1 run=$2 janus
  janus=$(scripts/janus-host.sh start "$out/janus/$scenario-$run.server.log")
  ${loadgen_cpu[@]+"${loadgen_cpu[@]}"} nice -n "$nice" target/release/roundtable-loadgen \
    --target janus --janus-url ws://10.77.0.1:8188 \
    --scenario "$scenario" --server-pid "$janus" --json "$out/janus/$scenario-$run.json" \
    ${extra[@]+"${extra[@]}"} >"$out/janus/$scenario-$run.txt" 2>"$out/janus/$scenario-$run.progress.log"
  scripts/janus-host.sh stop
}
for scenario in "$@"; do
  for run in $(seq "$runs"); do
    for target in $targets; do
      rm -f "$out/$target/$scenario-$run.json"
      "run_$target" "$scenario" "$run" ||
        echo "$scenario, run $run against $target failed" >&2
      echo "$scenario, run $run of $runs, $target:" \
        "$(grep '^forwarded' "$out/$target/$scenario-$run.txt" || echo '-')" >&2
    done
  done
done
INNER

python3 - "$OUT" "$TARGETS" "${scenarios[@]}" <<'SUMMARY'
import json, statistics, sys
from pathlib import Path

out, targets, scenarios = Path(sys.argv[1]), sys.argv[2].split(), sys.argv[3:]
NAMES = {"roundtable": "Roundtable", "roundtable-base": "Roundtable at $BASE (see base.txt)",
         "roundtable-sansio": "Roundtable, sans-IO generator client", "janus": "Janus",
         "roundtable-record": "Roundtable recording every participant"}

def runs(target, name):
    return [json.loads(p.read_text()) for p in sorted((out / target).glob(f"{name}-*.json"))]

def field(report, *path):
    for key in path:
        if report is None:
            return None
        report = report.get(key)
    return report

def cell(values, fmt="{:.0f}"):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    med = fmt.format(statistics.median(values))
    return med if len(values) == 1 else f"{med} ({fmt.format(min(values))}-{fmt.format(max(values))})"

loss = lambda r: 100 * r["totals"]["lost"] / max(r["totals"]["expected"], 1)
# (label, how to read it from a report, format)
FIGURES = [
    ("forwarded pkt/s", lambda r: field(r, "forwarded_per_s"), "{:.0f}"),
    ("loss %", loss, "{:.3f}"),
    ("latency p50 ms", lambda r: field(r, "latency_ms", "p50"), "{:.1f}"),
    ("latency p99 ms", lambda r: field(r, "latency_ms", "p99"), "{:.1f}"),
    ("latency p99.9 ms", lambda r: field(r, "latency_ms", "p999"), "{:.1f}"),
    ("added by the server p50 ms", lambda r: field(r, "server_delay_ms", "p50"), "{:.2f}"),
    ("added by the server p99 ms", lambda r: field(r, "server_delay_ms", "p99"), "{:.2f}"),
    ("added by the server p99.9 ms", lambda r: field(r, "server_delay_ms", "p999"), "{:.2f}"),
    ("join p50 ms", lambda r: field(r, "join_ms", "p50"), "{:.0f}"),
    ("join p99 ms", lambda r: field(r, "join_ms", "p99"), "{:.0f}"),
    ("join from those already in p50 ms", lambda r: field(r, "join_present_ms", "p50"), "{:.0f}"),
    ("join from those already in p99 ms", lambda r: field(r, "join_present_ms", "p99"), "{:.0f}"),
    ("signaling p50 ms", lambda r: field(r, "publish_answer_ms", "p50"), "{:.1f}"),
    ("server CPU % of a core", lambda r: field(r, "server", "cpu_percent"), "{:.0f}"),
    ("server us/pkt", lambda r: field(r, "server", "cpu_us_per_packet"), "{:.1f}"),
    ("server KiB/participant (anonymous)", lambda r: field(r, "server", "anon_per_participant_kib"), "{:.0f}"),
    ("server KiB/participant (VmRSS)", lambda r: field(r, "server", "rss_per_participant_kib"), "{:.0f}"),
    ("loadgen CPU %", lambda r: field(r, "loadgen", "cpu_percent"), "{:.0f}"),
    ("joined / failed / incomplete", None, None),
]

def values(target, name, read):
    vs = []
    for r in runs(target, name):
        try:
            v = read(r)
        except (TypeError, KeyError, ZeroDivisionError):
            v = None
        if v is not None:
            vs.append(v)
    return vs

def median(target, name, read):
    vs = values(target, name, read)
    return statistics.median(vs) if vs else None

for target in targets:
    print(f"### {NAMES.get(target, target)}")
    print()
    print("| scenario | runs | forwarded pkt/s | loss % | latency p50 / p99 / p99.9 ms | added by the server p50 / p99 / p99.9 ms | join p50 / p99 ms | from those already in p50 / p99 ms | server CPU % | server us/pkt | server KiB/participant anonymous / VmRSS | loadgen CPU % | loadgen us/pkt |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in scenarios:
        rs = runs(target, name)
        col = lambda *path, fmt="{:.0f}": cell([field(r, *path) for r in rs], fmt)
        latency = " / ".join(col("latency_ms", q, fmt="{:.1f}") for q in ("p50", "p99", "p999"))
        added = " / ".join(col("server_delay_ms", q, fmt="{:.2f}") for q in ("p50", "p99", "p999"))
        join = " / ".join(col("join_ms", q) for q in ("p50", "p99"))
        present = " / ".join(col("join_present_ms", q) for q in ("p50", "p99"))
        print(f"| {name} | {len(rs)} | {col('forwarded_per_s')} | {cell([loss(r) for r in rs], '{:.3f}')} "
              f"| {latency} | {added} | {join} | {present} "
              f"| {col('server', 'cpu_percent')} | {col('server', 'cpu_us_per_packet', fmt='{:.1f}')} "
              f"| {col('server', 'anon_per_participant_kib')} / {col('server', 'rss_per_participant_kib')} "
              f"| {col('loadgen', 'cpu_percent')} "
              f"| {col('loadgen', 'cpu_us_per_packet', fmt='{:.1f}')} |")
    print()

if "roundtable" in targets and "janus" in targets:
    print("### Side by side: medians, and ours / Janus")
    print()
    print("| scenario | figure | Roundtable | Janus | ours / Janus |")
    print("|---|---|---|---|---|")
    for name in scenarios:
        for label, read, fmt in FIGURES:
            if read is None:
                counts = lambda t: " / ".join(
                    str(sum(field(r, k) or 0 for r in runs(t, name)))
                    for k in ("joined", "failed_joins", "incomplete"))
                print(f"| {name} | {label} (sum over runs) | {counts('roundtable')} | {counts('janus')} | |")
                continue
            ours, theirs = median("roundtable", name, read), median("janus", name, read)
            show = lambda v: "-" if v is None else fmt.format(v)
            ratio = f"{ours / theirs:.2f}" if ours is not None and theirs else "-"
            print(f"| {name} | {label} | {show(ours)} | {show(theirs)} | {ratio} |")
    print()

PAIRS = [
    ("roundtable", "roundtable-base",
     "This checkout against the base, in alternating pairs: ours / base per pair", "ours / base"),
    ("roundtable-record", "roundtable",
     "Recording everyone against recording off, in alternating pairs: record / off per pair",
     "record / off"),
]
for first, second, title, head in PAIRS:
    if first not in targets or second not in targets:
        continue
    # Run i of each target ran back to back: compare them as pairs.
    print(f"### {title}")
    print()
    print(f"| scenario | figure | {head}, each pair | median |")
    print("|---|---|---|---|")
    pair_figures = [
        ("server us/pkt", lambda r: field(r, "server", "cpu_us_per_packet")),
        ("server KiB/participant (anonymous)", lambda r: field(r, "server", "anon_per_participant_kib")),
        ("server KiB/participant (VmRSS)", lambda r: field(r, "server", "rss_per_participant_kib")),
        ("added by the server p99 ms", lambda r: field(r, "server_delay_ms", "p99")),
    ]
    for name in scenarios:
        ours_runs, base_runs = runs(first, name), runs(second, name)
        for label, read in pair_figures:
            ratios = []
            for a, b in zip(ours_runs, base_runs):
                try:
                    ratios.append(read(a) / read(b))
                except (TypeError, ZeroDivisionError):
                    pass
            shown = ", ".join(f"{r:.2f}" for r in ratios) or "-"
            med = f"{statistics.median(ratios):.2f}" if ratios else "-"
            print(f"| {name} | {label} | {shown} | {med} |")
    print()

if "roundtable" in targets:
    us_per_packet = lambda r: field(r, "server", "cpu_us_per_packet")
    ratios = [
        ("server CPU per forwarded packet (goal 5 us)", lambda r: us_per_packet(r) / 5),
        ("join to first media, p50 (goal 150 ms)", lambda r: field(r, "join_ms", "p50") / 150),
        ("join to first media, p99 (goal 400 ms)", lambda r: field(r, "join_ms", "p99") / 400),
        ("the same, from those already in, p50 (goal 150 ms)",
         lambda r: field(r, "join_present_ms", "p50") / 150),
        ("the same, from those already in, p99 (goal 400 ms)",
         lambda r: field(r, "join_present_ms", "p99") / 400),
        ("server memory per participant, anonymous (goal 1 MiB)",
         lambda r: field(r, "server", "anon_per_participant_kib") / 1024),
        ("server memory per participant, VmRSS (goal 1 MiB)",
         lambda r: field(r, "server", "rss_per_participant_kib") / 1024),
        ("p99 added by the server (goal 1 ms, at the load of the next row)",
         lambda r: field(r, "server_delay_ms", "p99") / 1),
        ("server CPU / 70 % of a core (the latency goal's load)",
         lambda r: field(r, "server", "cpu_percent") / 70),
        ("server CPU per packet / LiveKit's (~18 us)", lambda r: us_per_packet(r) / 18),
        ("loadgen CPU / server CPU",
         lambda r: field(r, "loadgen", "cpu_percent") / field(r, "server", "cpu_percent")),
    ]
    print("### Roundtable against the goals")
    print()
    print("| median / goal | " + " | ".join(scenarios) + " |")
    print("|---|" + "---|" * len(scenarios))
    for label, ratio in ratios:
        cells = []
        for name in scenarios:
            m = median("roundtable", name, ratio)
            cells.append("-" if m is None else f"{m:.2f}")
        print(f"| {label} | " + " | ".join(cells) + " |")
SUMMARY
