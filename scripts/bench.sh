#!/usr/bin/env bash
# The benchmarks of BENCHMARKS.md: a release build, then each scenario RUNS times, each run
# against a fresh server. Server and load generator share one network namespace that holds
# only `lo`, so no traffic leaves the machine. Prints medians (min-max) as Markdown tables;
# every run's JSON report, table and logs stay in $OUT. Needs root (for unshare).
#
#   scripts/bench.sh                    # all four scenarios, 3 runs each
#   RUNS=5 scripts/bench.sh room10      # one scenario, 5 runs
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
OUT=${OUT:-target/bench}
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(room10 rooms skillshare40 joinstorm)

cargo build --release -p roundtable -p roundtable-loadgen
mkdir -p "$OUT"
{ echo "nproc: $(nproc)"; lscpu | head -20; echo "kernel: $(uname -r)"; } >"$OUT/machine.txt"

unshare --net bash -s "$OUT" "$RUNS" "${scenarios[@]}" <<'INNER'
set -euo pipefail
out=$1 runs=$2
shift 2
ip link set lo up
for scenario in "$@"; do
  for run in $(seq "$runs"); do
    data=$(mktemp -d)
    target/release/roundtable --data-dir "$data" --admin-token bench \
      >"$out/$scenario-$run.server.log" 2>&1 &
    server=$!
    for _ in $(seq 100); do
      curl -sf http://127.0.0.1:8080/healthz >/dev/null && break
      sleep 0.1
    done
    target/release/roundtable-loadgen --server http://127.0.0.1:8080 --admin-token bench \
      --scenario "$scenario" --server-pid "$server" --json "$out/$scenario-$run.json" \
      >"$out/$scenario-$run.txt" 2>"$out/$scenario-$run.progress.log"
    kill "$server"
    wait "$server" 2>/dev/null || true
    rm -rf "$data"
    echo "$scenario, run $run of $runs: $(grep '^forwarded' "$out/$scenario-$run.txt")" >&2
  done
done
INNER

python3 - "$OUT" "${scenarios[@]}" <<'SUMMARY'
import json, statistics, sys
from pathlib import Path

out, scenarios = Path(sys.argv[1]), sys.argv[2:]

def runs(name):
    return [json.loads(p.read_text()) for p in sorted(out.glob(f"{name}-*.json"))]

def cell(values, fmt="{:.0f}"):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    med = fmt.format(statistics.median(values))
    return med if len(values) == 1 else f"{med} ({fmt.format(min(values))}-{fmt.format(max(values))})"

def field(report, *path):
    for key in path:
        if report is None:
            return None
        report = report.get(key)
    return report

print("| scenario | runs | forwarded pkt/s | loss % | latency p50 / p99 / p99.9 ms | join p50 / p99 ms | server CPU % | server us/pkt | server KiB/participant | loadgen CPU % |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name in scenarios:
    rs = runs(name)
    col = lambda *path, fmt="{:.0f}": cell([field(r, *path) for r in rs], fmt)
    loss = cell([100 * r["totals"]["lost"] / max(r["totals"]["expected"], 1) for r in rs], "{:.3f}")
    latency = " / ".join(col("latency_ms", q, fmt="{:.1f}") for q in ("p50", "p99", "p999"))
    join = " / ".join(col("join_ms", q) for q in ("p50", "p99"))
    print(f"| {name} | {len(rs)} | {col('forwarded_per_s')} | {loss} | {latency} | {join} "
          f"| {col('server', 'cpu_percent')} | {col('server', 'cpu_us_per_packet', fmt='{:.1f}')} "
          f"| {col('server', 'rss_per_participant_kib')} | {col('loadgen', 'cpu_percent')} |")

us_per_packet = lambda r: field(r, "server", "cpu_us_per_packet")
ratios = [
    ("server CPU per forwarded packet (goal 5 us)", lambda r: us_per_packet(r) / 5),
    ("join to first media, p50 (goal 150 ms)", lambda r: field(r, "join_ms", "p50") / 150),
    ("join to first media, p99 (goal 400 ms)", lambda r: field(r, "join_ms", "p99") / 400),
    ("server memory per participant (goal 1 MiB)",
     lambda r: field(r, "server", "rss_per_participant_kib") / 1024),
    ("server CPU per packet / LiveKit's (~18 us)", lambda r: us_per_packet(r) / 18),
    ("loadgen CPU / server CPU",
     lambda r: field(r, "loadgen", "cpu_percent") / field(r, "server", "cpu_percent")),
]
print()
print("| median / goal | " + " | ".join(scenarios) + " |")
print("|---|" + "---|" * len(scenarios))
for label, ratio in ratios:
    cells = []
    for name in scenarios:
        values = []
        for r in runs(name):
            try:
                values.append(ratio(r))
            except (TypeError, ZeroDivisionError):
                pass  # a run without the figure (no server pid, no join time)
        cells.append(f"{statistics.median(values):.2f}" if values else "-")
    print(f"| {label} | " + " | ".join(cells) + " |")
SUMMARY
