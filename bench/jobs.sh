#!/usr/bin/env bash
# Job throughput, end to end (enqueue N no-op jobs, time until all are processed), with 1 and
# 2 worker processes, 3 runs each; prints every run and the median, and the median as a ratio to
# the Redis ceiling measured in the same run: the same commands per job sent by a pipelined loop
# (`bench-jobs redis-ceiling`) over as many connections as worker processes. Procedure and
# results: docs/PERFORMANCE.md. Needs the local Redis (make services). Not part of the test
# suite.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=${JOBS:-20000}
concurrency=${CONCURRENCY:-64}
runs=${RUNS:-3}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379}

cargo build -q --release -p labs_bench
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bench="$target_dir/release/bench-jobs"

for workers in 1 2; do
  rates=()
  for run in $(seq "$runs"); do
    line=$("$bench" --redis-url "$redis_url" run --jobs "$jobs" --workers "$workers" --concurrency "$concurrency")
    echo "run $run: $line"
    rates+=("${line##*jobs_per_s=}")
  done
  median=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
  ceilings=()
  for run in $(seq "$runs"); do
    line=$("$bench" --redis-url "$redis_url" redis-ceiling --jobs "$jobs" --connections "$workers" --concurrency "$concurrency")
    echo "ceiling run $run: $line"
    ceilings+=("${line##*jobs_per_s=}")
  done
  ceiling=$(printf '%s\n' "${ceilings[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
  ratio=$(python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.2f}')" "$median" "$ceiling")
  echo "workers=$workers median_jobs_per_s=$median redis_ceiling_jobs_per_s=$ceiling ratio=$ratio"
done

# Each run used its own namespace; remove what the runs left behind.
redis-cli -u "$redis_url" --scan --pattern 'bench_*' | xargs -r -n 500 redis-cli -u "$redis_url" del >/dev/null
