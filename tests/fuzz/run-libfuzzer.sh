#!/bin/bash
# run-libfuzzer.sh - builds the fuzz targets with clang, libFuzzer,
# AddressSanitizer and UndefinedBehaviorSanitizer, and runs each for a while,
# starting from the committed corpus in tests/fuzz/corpus/TARGET.
#
#   tests/fuzz/run-libfuzzer.sh [-t SECONDS] [-j JOBS] [-o DIR] [-m] [TARGET...]
#
#   -t SECONDS  time per target (default 60)
#   -j JOBS     targets run at once (default 1)
#   -o DIR      build and work directory (default /tmp/bx-libfuzzer); the
#               corpus each target grows is kept in DIR/corpus/TARGET,
#               inputs that failed in DIR/artifacts/, one line per target
#               ("PASS fuzz_T ..." or "FAIL fuzz_T ...") in DIR/summary, and
#               what failed, with each failing input in base64, in
#               DIR/failures
#   -m          afterwards, add to tests/fuzz/corpus/TARGET the inputs of
#               DIR/corpus/TARGET (up to 2 KiB) that reach code edges the
#               committed corpus does not (libFuzzer's -merge=1)
#   TARGET      batch http channel wire engine token (default: all)
#
# A failing input is printed as its path and its base64, with the command
# that replays it. Needs clang with the libFuzzer runtime; on Debian 12
# "./quickstart fuzz" installs it (clang libclang-rt-dev) and runs this.
# Exits 0 if no target failed, 1 if one did, 77 if clang or libFuzzer is
# missing. See docs/fuzzing.md.
set -u

secs=60
jobs=1
out=/tmp/bx-libfuzzer
merge=no
while getopts t:j:o:mh opt; do
    case $opt in
        t) secs=$OPTARG ;;
        j) jobs=$OPTARG ;;
        o) out=$OPTARG ;;
        m) merge=yes ;;
        *) sed -n '2,24p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(batch http channel wire engine token)

src=$(cd "$(dirname "$0")/../.." && pwd)
CC=${CC:-clang}
for t in "${targets[@]}"; do
    if [ ! -f "$src/tests/fuzz/fuzz_$t.c" ]; then
        echo "run-libfuzzer: no target $t" >&2
        exit 2
    fi
done

missing() {
    echo "run-libfuzzer: $1; install it with (Debian 12):" >&2
    echo "    apt-get install clang libclang-rt-dev" >&2
    exit 77
}
command -v "$CC" >/dev/null 2>&1 || missing "$CC not found"
mkdir -p "$out/obj" "$out/corpus" "$out/artifacts" || exit 1
out=$(cd "$out" && pwd)
probe=$out/obj/probe.c
printf '%s\n' '#include <stdint.h>' '#include <stddef.h>' \
    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
    >"$probe"
"$CC" -fsanitize=fuzzer,address,undefined -o "$out/obj/probe" "$probe" 2>/dev/null ||
    missing "$CC cannot link libFuzzer"

deps="json-c libzmq sqlite3"
cflags=(-std=gnu11 -g -O1 -D_GNU_SOURCE -I"$src" -I"$src/common" -I"$src/dispatcher"
        -I"$src/fcgi" -fno-omit-frame-pointer
        -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
        $(pkg-config --cflags $deps))
libs=($(pkg-config --libs $deps))

# Waits until fewer than $jobs background jobs run.
throttle() {
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n
    done
}

# The code under test is compiled here with coverage instrumentation (a
# library from ./configure would be invisible to libFuzzer's guidance).
echo "=== compiling the code under test in $out/obj"
awk -f "$src/sql/embed.awk" "$src/sql/schema.sql" >"$out/obj/schema.c" || exit 1
objs=()
srcs=("$out/obj/schema.c")
for f in common/util.c common/log.c common/channel.c common/bayeux.c common/wire.c \
         common/config.c common/sha256.c common/token.c \
         dispatcher/map.c dispatcher/msg.c dispatcher/engine.c dispatcher/state.c \
         dispatcher/outbox.c dispatcher/extension.c dispatcher/api.c dispatcher/rules.c \
         dispatcher/persist.c dispatcher/history.c dispatcher/store.c \
         dispatcher/squeue.c dispatcher/admit.c dispatcher/guard.c \
         fcgi/http.c; do
    srcs+=("$src/$f")
done
rm -f "$out/obj/"*.o
for f in "${srcs[@]}"; do
    o=$out/obj/$(basename "$(dirname "$f")")_$(basename "$f" .c).o
    objs+=("$o")
    throttle
    "$CC" "${cflags[@]}" -c -o "$o" "$f" &
done
wait
for o in "${objs[@]}"; do
    [ -f "$o" ] || { echo "run-libfuzzer: compiling $o failed" >&2; exit 1; }
done

# Inputs the longest seeds need: a batch of 1,000 handshakes is 40 KB.
max_len() {
    case $1 in
        batch|http) echo 65536 ;;
        *) echo 4096 ;;
    esac
}

# fuzz_one T: builds and runs one target; writes DIR/result.T.
fuzz_one() {
    local t=$1 bin=$out/fuzz_$1 log=$out/fuzz_$1.log rc=0
    rm -f "$out/result.$t" "$out/artifacts/$t-"*
    if ! "$CC" "${cflags[@]}" -fsanitize=fuzzer -o "$bin" "$src/tests/fuzz/fuzz_$t.c" \
            "${objs[@]}" "${libs[@]}" >"$log" 2>&1; then
        echo "FAIL fuzz_$t: does not build, see $log" >"$out/result.$t"
        return
    fi
    mkdir -p "$out/corpus/$t"
    # New inputs go to the first directory; the seeds in the tree stay as
    # they are.
    "$bin" -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" \
        "$out/corpus/$t" "$src/tests/fuzz/corpus/$t" >>"$log" 2>&1 || rc=$?
    local runs cov
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    if [ $rc -eq 0 ] && ! ls "$out/artifacts/$t-"* >/dev/null 2>&1; then
        echo "PASS fuzz_$t: ${runs:-?} runs, ${cov:-cov: ?}," \
             "$(find "$out/corpus/$t" -type f | wc -l) inputs learnt" >"$out/result.$t"
    else
        echo "FAIL fuzz_$t: exit $rc after ${runs:-?} runs, see $log" >"$out/result.$t"
    fi
}

echo "=== fuzzing ${targets[*]}: $secs s each, $jobs at once"
for t in "${targets[@]}"; do
    throttle
    fuzz_one "$t" &
done
wait

# Prints what one failed target left: the broken rule or sanitizer report,
# and each failing input in base64 with the commands that replay it.
report() {
    local t=$1 a
    grep -m 8 -E 'check failed|ERROR|runtime error|SUMMARY|does not build|error:' \
        "$out/fuzz_$t.log" | sed 's/^/    /'
    for a in "$out/artifacts/$t-"*; do
        [ -f "$a" ] || continue
        echo "    failing input: $a ($(wc -c <"$a") bytes); to replay it, paste:"
        echo "base64 -d >fuzz_$t.input <<'EOF'"
        base64 -w 76 "$a"
        echo "EOF"
        echo "build/tests/fuzz/fuzz_$t fuzz_$t.input   # or $out/fuzz_$t fuzz_$t.input"
    done
}

status=0
: >"$out/summary"
: >"$out/failures"
for t in "${targets[@]}"; do
    [ -f "$out/result.$t" ] || echo "FAIL fuzz_$t: no result" >"$out/result.$t"
    tee -a "$out/summary" <"$out/result.$t"
    grep -q '^PASS' "$out/result.$t" && continue
    status=1
    { cat "$out/result.$t"; report "$t"; } >>"$out/failures"
    report "$t"
done

if [ "$merge" = yes ]; then
    for t in "${targets[@]}"; do
        [ -x "$out/fuzz_$t" ] || continue
        # Only small inputs: the committed corpus is read on every make check.
        small=$out/merge/$t
        rm -rf "$small"
        mkdir -p "$small"
        find "$out/corpus/$t" -type f -size -2049c -exec cp {} "$small/" \;
        before=$(find "$src/tests/fuzz/corpus/$t" -type f | wc -l)
        # Without counters, an input is new only if it reaches a new edge,
        # not if it runs a known loop more often: tens of inputs, not
        # hundreds.
        "$out/fuzz_$t" -merge=1 -use_counters=0 -max_len="$(max_len "$t")" \
            "$src/tests/fuzz/corpus/$t" "$small" >"$out/merge_$t.log" 2>&1 || status=1
        after=$(find "$src/tests/fuzz/corpus/$t" -type f | wc -l)
        echo "merged fuzz_$t: $((after - before)) new inputs in tests/fuzz/corpus/$t"
    done
fi
exit $status
