#!/bin/bash
# Fuzzes one target for a while: ./run.sh TARGET SECONDS (from fuzz/; see README.md).
# The corpus grows in corpus/TARGET, starting from the seeds and the regression inputs;
# crashes land in artifacts/TARGET; the log, with libFuzzer's final stats, in logs/TARGET.log.
set -u
t=$1
s=$2
cd "$(dirname "$0")"
mkdir -p "corpus/$t" logs
RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "corpus/$t" "seeds/$t" "regressions/$t" -- \
    -dict="dicts/$t.dict" -max_total_time="$s" -timeout=10 -print_final_stats=1 > "logs/$t.log" 2>&1
status=$?
grep -E '^#[0-9]+' "logs/$t.log" | tail -1
grep -E '^stat::(number_of_executed_units|average_exec_per_sec)|Test unit written' "logs/$t.log"
exit $status
