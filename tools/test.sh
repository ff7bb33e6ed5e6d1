#!/usr/bin/env bash
# test.sh — lambdad's whole test suite, the one command CI runs.
#
#   tools/test.sh [STAGE...]      STAGE: unit release e2e asan tsan fuzz bench (default: all)
#
# Runs tools/setup.sh and tools/build-test-image.sh, then each stage; a
# failing stage does not stop the others. At the end it prints a summary
# table and exits non-zero if any stage failed.
#
#   unit  ctest in build/ (--output-on-failure; no tests found = failure)
#   release  build-release/ with -DCMAKE_BUILD_TYPE=Release (-O3: the
#         warnings only the optimiser finds, e.g. -Wformat-truncation, are
#         errors too), then its unit tests
#   e2e   pytest tests/e2e against build/lambdad (LAMBDAD_BIN)
#   asan  build-asan/ with -DLAMBDAD_SANITIZE=address,undefined: ctest and
#         the whole e2e suite against build-asan/lambdad; a sanitizer report
#         in the server's log fails the test that caused it
#   tsan  build-tsan/ with -DLAMBDAD_SANITIZE=thread (clang): the concurrency
#         unit tests (pool/*, server/test_persist: group commit and the
#         checkpoint thread) and the e2e tests marked `smoke`
#   fuzz  build-fuzz/ with -DLAMBDAD_FUZZ=ON (clang): every fuzz_* target for
#         LAMBDAD_FUZZ_SECONDS (default 30) each
#   bench bench/loadgen_selftest.py, then bench/run.py --quick (figures are
#         reported, never asserted; results go to build/bench-results)
#
# Environment:
#   LAMBDAD_FUZZ_SECONDS   seconds per fuzz target (default 30)
#   LAMBDAD_DETECT_LEAKS=0 turn LeakSanitizer off in the asan and fuzz stages (on by default)
#   LAMBDAD_BUILD_DIR      main build dir (default build/; the others get
#                          -asan, -tsan, -fuzz appended)
#   PYTEST_ADDOPTS         extra pytest options (standard pytest variable)
#   LAMBDAD_TEST_STRICT    1 (set here; default elsewhere 0): a test that would
#                          skip for a missing prerequisite (Docker engine, test
#                          image, cgroups, AWS CLI v2) fails instead
# pytest's exit status 5 ("no tests collected") is a failure like any other.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
JOBS="$(nproc)"
PY="$ROOT/.venv/bin/python"
FUZZ_SECONDS="${LAMBDAD_FUZZ_SECONDS:-30}"
LEAKS="${LAMBDAD_DETECT_LEAKS:-1}"
ALL_STAGES=(unit release e2e asan tsan fuzz bench)
# The main build dir (setup.sh builds it); the sanitizer and fuzz builds sit
# beside it: build-asan, build-tsan, build-fuzz.
BUILD="${LAMBDAD_BUILD_DIR:-$ROOT/build}"
RELEASE_BUILD="$BUILD-release" ASAN_BUILD="$BUILD-asan" TSAN_BUILD="$BUILD-tsan" FUZZ_BUILD="$BUILD-fuzz"
export LAMBDAD_BUILD_DIR="$BUILD"

log() { printf '\n=== %s\n' "$*"; }

# ---------------------------------------------------------------- helpers
# configure_build DIR [cmake args...]: configure (once) and build DIR
# (RelWithDebInfo unless BUILD_TYPE says otherwise).
configure_build() {
  local dir="$1"; shift
  local type="${BUILD_TYPE:-RelWithDebInfo}"
  if [[ ! -f "$dir/CMakeCache.txt" ]]; then
    cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE="$type" "$@"
  else
    cmake "$dir" -DCMAKE_BUILD_TYPE="$type" "$@" >/dev/null
  fi
  cmake --build "$dir" -j"$JOBS"
}

run_ctest() { # run_ctest DIR [ctest args...]
  local dir="$1"; shift
  ctest --test-dir "$dir" --output-on-failure --no-tests=error "$@"
}

run_e2e() { # run_e2e BINARY [pytest args...]
  local bin="$1"; shift
  LAMBDAD_BIN="$bin" "$PY" -m pytest "$ROOT/tests/e2e" "$@"
}

# Clang 14's TSan cannot map its shadow memory when the kernel randomises
# mmap with more than 28 bits; run without ASLR there if we may.
tsan_wrapper() {
  local bits
  bits="$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28)"
  if ((bits > 28)) && setarch "$(uname -m)" -R true 2>/dev/null; then
    echo setarch "$(uname -m)" -R
  fi
}

asan_env() {
  export ASAN_OPTIONS="detect_leaks=$LEAKS:halt_on_error=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
}

# ---------------------------------------------------------------- stages
stage_unit() {
  run_ctest "$BUILD"
}

stage_release() {
  BUILD_TYPE=Release configure_build "$RELEASE_BUILD"
  run_ctest "$RELEASE_BUILD"
}

stage_e2e() {
  run_e2e "$BUILD/lambdad"
}

stage_asan() {
  local cc=clang
  command -v clang >/dev/null || cc=gcc
  CC=$cc configure_build "$ASAN_BUILD" -DCMAKE_C_COMPILER=$cc -DLAMBDAD_SANITIZE=address,undefined
  asan_env
  local rc=0
  run_ctest "$ASAN_BUILD" || rc=1
  run_e2e "$ASAN_BUILD/lambdad" || rc=1
  return $rc
}

stage_tsan() {
  CC=clang configure_build "$TSAN_BUILD" -DCMAKE_C_COMPILER=clang -DLAMBDAD_SANITIZE=thread
  # liburcu is a system library built without TSan: its synchronisation is
  # invisible to TSan (see tests/tsan.supp for what is suppressed and why).
  export TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:history_size=4:suppressions=$ROOT/tests/tsan.supp"
  local wrap rc=0
  read -r -a wrap <<<"$(tsan_wrapper)"
  "${wrap[@]}" ctest --test-dir "$TSAN_BUILD" --output-on-failure --no-tests=error \
    -R '^pool/|^server/test_persist$' --timeout 120 || rc=1
  LAMBDAD_E2E_SMOKE=1 "${wrap[@]}" env LAMBDAD_BIN="$TSAN_BUILD/lambdad" \
    "$PY" -m pytest "$ROOT/tests/e2e" || rc=1
  return $rc
}

stage_fuzz() {
  # Libraries get coverage instrumentation too (fuzzer-no-link), so the
  # fuzzers see the edges of the code they drive, not only their own.
  CC=clang configure_build "$FUZZ_BUILD" -DCMAKE_C_COMPILER=clang -DLAMBDAD_FUZZ=ON \
    -DLAMBDAD_SANITIZE=address,undefined -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link
  asan_env
  local targets=() t name rc=0
  for t in "$FUZZ_BUILD"/fuzz_*; do
    [[ -f "$t" && -x "$t" ]] && targets+=("$t")
  done
  if ((${#targets[@]} == 0)); then
    echo "no fuzz_* targets were built (tests/fuzz/fuzz_*.c)" >&2
    return 1
  fi
  for t in "${targets[@]}"; do
    name="$(basename "$t")"
    local corpus="$FUZZ_BUILD/corpus/$name" seeds=() dict=() d
    mkdir -p "$corpus"
    # Seed corpora (read-only): tests/fuzz/corpus/<target>/ or tests/fuzz/corpus_<x>/
    # for target fuzz_<x>.
    for d in "tests/fuzz/corpus/$name" "tests/fuzz/corpus_${name#fuzz_}"; do
      [[ -d "$d" ]] && seeds+=("$d")
    done
    [[ -f "tests/fuzz/$name.dict" ]] && dict+=("-dict=tests/fuzz/$name.dict")
    echo "--- $name: ${FUZZ_SECONDS}s"
    if ! "$t" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
         -print_final_stats=1 -artifact_prefix="$FUZZ_BUILD/$name-" "${dict[@]}" \
         "$corpus" "${seeds[@]}" >"$FUZZ_BUILD/$name.log" 2>&1; then
      tail -n 60 "$FUZZ_BUILD/$name.log"
      echo "--- $name FAILED (log: $FUZZ_BUILD/$name.log)"
      rc=1
    else
      grep -E '^stat::number_of_executed_units|^Done ' "$FUZZ_BUILD/$name.log" || true
    fi
  done
  return $rc
}

stage_bench() {
  # The benchmark suite must not rot: its load generator's self-test, then
  # the quick suite (reports figures, asserts no timing).
  "$PY" "$ROOT/bench/loadgen_selftest.py" "$BUILD/bench/loadgen"
  "$PY" "$ROOT/bench/run.py" --quick --build-dir "$BUILD" --out "$BUILD/bench-results"
}

# ---------------------------------------------------------------- main
stages=("$@")
((${#stages[@]})) || stages=("${ALL_STAGES[@]}")
for s in "${stages[@]}"; do
  [[ " ${ALL_STAGES[*]} " == *" $s "* ]] || {
    echo "test.sh: unknown stage '$s' (stages: ${ALL_STAGES[*]})" >&2
    exit 2
  }
done

log "setup"
"$ROOT/tools/setup.sh"
export LAMBDAD_TEST_STRICT="${LAMBDAD_TEST_STRICT:-1}"
# The Docker tests' image, before any stage: the unit stage's Docker tests
# and the e2e tests that check for it at collection need it. A failure here
# makes those tests fail (strict), not skip.
log "test image"
"$ROOT/tools/build-test-image.sh" --quiet || echo "test.sh: tools/build-test-image.sh failed" >&2

declare -A result seconds
failed=0
for s in "${stages[@]}"; do
  log "stage $s"
  t0=$SECONDS
  # A subshell outside any `if`/`||`, so `set -e` stays in force inside it.
  set +e
  ( set -euo pipefail; "stage_$s" )
  rc=$?
  set -e
  seconds[$s]=$((SECONDS - t0))
  if ((rc == 0)); then result[$s]=PASS; else result[$s]="FAIL ($rc)"; failed=$((failed + 1)); fi
done

echo
echo "=== summary"
printf '%-6s  %-10s  %8s\n' stage result seconds
for s in "${stages[@]}"; do
  printf '%-6s  %-10s  %8s\n' "$s" "${result[$s]}" "${seconds[$s]}"
done
echo "stages: $(( ${#stages[@]} - failed )) passed, $failed failed"
((failed == 0))
