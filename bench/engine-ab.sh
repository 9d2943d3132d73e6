#!/usr/bin/env bash
# Engine benchmarks of this tree against a baseline checkout, alternated in
# one run so both see the same machine state:
#
#   git worktree add /tmp/base <commit>
#   BENCH_BASELINE_DIR=/tmp/base bench/engine-ab.sh
#
# BENCH_PATTERN picks the benchmarks (go test -bench), BENCH_TIME their
# -benchtime, BENCH_ROUNDS how many times each tree runs them. Files named
# in BENCH_COPY (engine/*_bench_test.go of this tree) are copied into the
# baseline first, so benchmarks new in this tree run there too; the
# baseline's engine tests then use the same cluster settings as this
# tree's when BENCH_SYNC_COMMIT=on (the default: the crash tests need it).
# Output: go test's benchmark lines, each prefixed with the tree's name.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
: "${BENCH_BASELINE_DIR:?set BENCH_BASELINE_DIR to a checkout of the baseline commit}"
BENCH_PATTERN=${BENCH_PATTERN:-'AddFieldLatency|AddFieldTenants/analyzed|AddFieldTenantsUnique'}
BENCH_TIME=${BENCH_TIME:-1x}
BENCH_ROUNDS=${BENCH_ROUNDS:-2}
BENCH_COPY=${BENCH_COPY:-engine/journal_bench_test.go}
BENCH_SYNC_COMMIT=${BENCH_SYNC_COMMIT:-on}
export CGO_ENABLED=1

for f in $BENCH_COPY; do cp "$f" "$BENCH_BASELINE_DIR/$f"; done
if [[ $BENCH_SYNC_COMMIT == on ]] && ! grep -q synchronous_commit "$BENCH_BASELINE_DIR/engine/main_test.go"; then
  sed -i 's/pgtest.Options{}/pgtest.Options{Settings: map[string]string{"synchronous_commit": "on"}}/' \
    "$BENCH_BASELINE_DIR/engine/main_test.go"
fi

run() { # name dir
  (cd "$2" && go test ./engine/ -run '^$' -bench "$BENCH_PATTERN" -benchtime "$BENCH_TIME" -timeout 60m) |
    grep '^Benchmark' | sed "s/^/$1 /"
}
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
  if ((r % 2)); then
    run baseline "$BENCH_BASELINE_DIR"; run this .
  else
    run this .; run baseline "$BENCH_BASELINE_DIR"
  fi
done
