#!/usr/bin/env bash
# One long libFuzzer run of one target (docs/fuzzing.md, "Long runs with libFuzzer"):
#   fuzz/run.sh TARGET SECONDS [LIBFUZZER_FLAG...]      TARGET: frames, methods, content or store
# With a nightly toolchain it builds with AddressSanitizer; without one (or with FUZZ_SANITIZER=none) it builds on
# the default toolchain without a sanitizer, which stable accepts and which runs several times faster. Installs
# cargo-fuzz if it is missing. New inputs go to fuzz/corpus-run/TARGET (not committed); the committed corpus and the
# regression inputs are read only. Crashes land in fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: fuzz/run.sh TARGET SECONDS [LIBFUZZER_FLAG...]}"
seconds="${2:?usage: fuzz/run.sh TARGET SECONDS [LIBFUZZER_FLAG...]}"
shift 2
# The largest single allocation allowed, in MB (docs/fuzzing.md, "Allocation"): a frame of at most about 2 MiB
# (the largest frame_max the frames target picks) or a constant factor of a small input; the store's read-ahead.
case "$target" in
  frames | methods | content) malloc_mb=16 ;;
  store) malloc_mb=32 ;;
  *) echo "fuzz/run.sh: unknown target $target (frames, methods, content, store)" >&2; exit 2 ;;
esac
if [[ "${FUZZ_SANITIZER:-address}" == none ]] || ! rustup toolchain list 2>/dev/null | grep '^nightly' >/dev/null; then
  build=(cargo fuzz run -s none)
else
  build=(cargo +nightly fuzz run)
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
corpora=("fuzz/corpus-run/$target" "fuzz/corpus/$target")
[[ -d "fuzz/regressions/$target" ]] && corpora+=("fuzz/regressions/$target")
mkdir -p "fuzz/corpus-run/$target"
exec "${build[@]}" -O "$target" "${corpora[@]}" -- \
  -dict="fuzz/dict/$target.dict" -max_total_time="$seconds" -timeout=10 \
  -malloc_limit_mb="$malloc_mb" -rss_limit_mb=2048 -print_final_stats=1 "$@"
