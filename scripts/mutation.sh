#!/usr/bin/env bash
# Mutation testing (not run in CI): mutmut puts small bugs into one package at a time, runs
# that package's tests against each, and this script prints the share of mutants killed.
#
#   bash scripts/mutation.sh                 # all packages below (hours on 2 cores)
#   bash scripts/mutation.sh metrics io      # some of them
#   JOBS=4 bash scripts/mutation.sh data     # parallel mutants (default: 2)
#   MUTATE="cellvae/metrics/frc.py" bash scripts/mutation.sh metrics   # only these files
#   TESTS="tests/metrics/test_sharpness.py" bash scripts/mutation.sh metrics  # only these tests
#   RERUN=1 bash scripts/mutation.sh metrics  # after adding tests: copy tests/ into the last
#       run's .mutation/metrics and run again only its survivors and unreached mutants (twice
#       after adding new test functions: mutmut 3.8 maps them to survivors on the second pass)
#   SAMPLE=100 SEED=14 bash scripts/mutation.sh io   # a seeded random sample of 100 mutants
#
# Each package runs in its own copy under .mutation/<package>/ (mutmut rewrites the sources
# it mutates), so the working tree is never touched. Afterwards list the survivors with
#   cd .mutation/<package> && mutmut results        # then: mutmut show <name>
# and either add a test that kills each one or judge it equivalent (same behaviour).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${MUTATION_DIR:-$root/.mutation}
jobs=${JOBS:-2}
python=${PYTHON:-python}
if [ $# -eq 0 ]; then set -- io data metrics inference likelihoods; fi

# package -> "<files to mutate (globs)>|<test paths>"
declare -A plan=(
  [io]="cellvae/io/*|tests/io"
  [data]="cellvae/data/*|tests/data"
  [metrics]="cellvae/metrics/*|tests/metrics"
  # inference: without the tests that spawn and kill worker processes or time a benchmark
  # (a minute per mutant; test_split's in-process tests still run)
  [inference]="cellvae/inference/*|tests/inference \
--deselect=tests/inference/test_split.py::test_sigterm_keeps_finished_blocks_and_releases_the_part_lock \
--deselect=tests/inference/test_split.py::test_a_killed_part_rerun_alone_completes_the_output \
--deselect=tests/inference/test_bench_reconstruct.py \
--deselect=tests/inference/test_tiling.py::test_cached_tiles_do_not_keep_whole_prediction_batches_alive"
  [likelihoods]="cellvae/models/likelihoods.py|tests/models/test_likelihoods.py"
)

toml_list() { printf '"%s", ' "$@" | sed 's/, $//'; }

summary=()
for pkg in "$@"; do
  [ -n "${plan[$pkg]:-}" ] || { echo "unknown package '$pkg'; choose from ${!plan[*]}" >&2; exit 2; }
  IFS='|' read -r files tests <<<"${plan[$pkg]}"
  files=${MUTATE:-$files} tests=${TESTS:-$tests}
  dir=$work/$pkg
  if [ -n "${RERUN:-}" ] && [ -d "$dir/mutants" ]; then
    echo "== mutmut: $pkg, again on the survivors of the last run with the current tests"
    (
      cd "$dir"
      unset PYTHONPATH
      export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
      rm -rf tests && cp -r "$root/tests" .
      mapfile -t again < <(mutmut results 2>/dev/null | sed -n 's/^ *\([^ ]*\): \(survived\|no tests\)$/\1/p')
      if [ ${#again[@]} -gt 0 ]; then
        mutmut run --max-children "$jobs" "${again[@]}" >mutmut.log 2>&1 || true
      fi
      mutmut export-cicd-stats >>mutmut.log 2>&1 || true
      mutmut results >survivors.txt 2>/dev/null || true
    )
  else
    rm -rf "$dir" && mkdir -p "$dir"
    cp -r "$root/cellvae" "$root/tests" "$dir/"
    cp "$root/pyproject.toml" "$dir/"
    set -f  # keep the globs for mutmut
    # shellcheck disable=SC2206
    file_list=($files) test_list=($tests)
    set +f
    cat >>"$dir/pyproject.toml" <<EOF

[tool.mutmut]
source_paths = ["cellvae/"]
only_mutate = [$(toml_list "${file_list[@]}")]
pytest_add_cli_args_test_selection = [$(toml_list "${test_list[@]}")]
# GUI plugins off (they double pytest's start-up, paid again by every mutant)
pytest_add_cli_args = ["-p", "no:cacheprovider", "-m", "not gui", "-p", "no:napari", "-p", "no:napari-plugin-engine", "-p", "no:npe2", "-p", "no:pytest-qt", "-p", "no:xvfb"]
process_isolation = "forkserver"
use_git_change_detection = false
# each mutant's pytest collects its tests again (seconds on a busy machine); a bare
# 15 x test-duration limit would call most mutants timeouts
timeout_constant = ${MUTATION_TIMEOUT:-60}.0
EOF
    echo "== mutmut: $pkg ($files) with $tests"
    (
      cd "$dir"
      # no PYTHONPATH: mutmut puts mutants/ on sys.path itself once it exists (an entry for a
      # missing folder given at start-up would be cached as absent and hide the tests package)
      unset PYTHONPATH
      export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
      if [ -n "${SAMPLE:-}" ]; then
        # a random sample estimates the kill rate where running every mutant takes hours: the
        # first run only generates the mutants and the test coverage (no name matches), the
        # second runs the sampled ones; the rate below counts only mutants that were run
        mutmut run --max-children "$jobs" "no-such-mutant" >mutmut.log 2>&1 || true
        "$python" - "$SAMPLE" "${SEED:-0}" >sample.txt <<'PY'
import glob, json, random, sys
n, seed = int(sys.argv[1]), int(sys.argv[2])
names = sorted(k for f in glob.glob("mutants/**/*.py.meta", recursive=True)
               for k in json.load(open(f))["exit_code_by_key"])
print("\n".join(random.Random(seed).sample(names, min(n, len(names)))))
PY
        # shellcheck disable=SC2046
        mutmut run --max-children "$jobs" $(cat sample.txt) >>mutmut.log 2>&1 || true
      else
        mutmut run --max-children "$jobs" >mutmut.log 2>&1 || true
      fi
      mutmut export-cicd-stats >>mutmut.log 2>&1 || true
      mutmut results >survivors.txt 2>/dev/null || true
    )
  fi
  line=$("$python" - "$pkg" "$dir/mutants/mutmut-cicd-stats.json" <<'PY'
import json, sys
pkg, path = sys.argv[1:]
try:
    s = json.load(open(path))
except OSError:
    print(f"{pkg:12s} no result (see .mutation/{pkg}/mutmut.log)")
    sys.exit()
judged = s["killed"] + s["survived"] + s["timeout"] + s["suspicious"] + s["segfault"]
killed = s["killed"] + s["timeout"] + s["segfault"]
rate = 100 * killed / judged if judged else float("nan")
print(f"{pkg:12s} {killed:5d}/{judged:<5d} killed ({rate:5.1f} %), "
      f"{s['survived']} survived, {s['no_tests']} not reached by the tests, "
      f"{s['skipped']} skipped")
PY
  )
  echo "$line"
  summary+=("$line")
done
echo
echo "kill rate per package (survivors: .mutation/<package>/survivors.txt)"
printf '%s\n' "${summary[@]}"
