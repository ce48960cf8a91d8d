#!/bin/bash
# run-libfuzzer.sh - builds the fuzz targets with clang, libFuzzer,
# AddressSanitizer and UndefinedBehaviorSanitizer, and runs each for a while.
#
#   tests/fuzz/run-libfuzzer.sh [-t SECONDS] [-o DIR] [TARGET...]
#
#   -t SECONDS  time per target (default 60)
#   -o DIR      build and work directory (default /tmp/bx-libfuzzer); the
#               corpus each target grows is kept in DIR/corpus/TARGET, and
#               inputs that failed in DIR/artifacts/
#   TARGET      batch http channel wire engine token (default: all)
#
# Needs clang with the libFuzzer runtime. On Debian 12:
#   apt-get install clang libclang-rt-14-dev
# plus the build dependencies (libjson-c-dev libzmq3-dev pkg-config).
# Exits 0 if no target failed, 1 if one did, 77 if clang or libFuzzer is
# missing. See docs/fuzzing.md.
set -u

secs=60
out=/tmp/bx-libfuzzer
while getopts t:o:h opt; do
    case $opt in
        t) secs=$OPTARG ;;
        o) out=$OPTARG ;;
        *) sed -n '2,18p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(batch http channel wire engine token)

src=$(cd "$(dirname "$0")/../.." && pwd)
CC=${CC:-clang}

if ! command -v "$CC" >/dev/null 2>&1; then
    echo "run-libfuzzer: $CC not found; install it with:" >&2
    echo "    apt-get install clang libclang-rt-14-dev" >&2
    exit 77
fi
mkdir -p "$out/obj" "$out/corpus" "$out/artifacts" || exit 1
probe=$out/obj/probe.c
printf '%s\n' '#include <stdint.h>' '#include <stddef.h>' \
    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
    >"$probe"
if ! "$CC" -fsanitize=fuzzer,address,undefined -o "$out/obj/probe" "$probe" 2>/dev/null; then
    echo "run-libfuzzer: $CC cannot link libFuzzer; install it with:" >&2
    echo "    apt-get install clang libclang-rt-14-dev" >&2
    exit 77
fi

deps="json-c libzmq sqlite3"
cflags=(-std=gnu11 -g -O1 -D_GNU_SOURCE -I"$src" -I"$src/common" -I"$src/dispatcher"
        -I"$src/fcgi" -fno-omit-frame-pointer
        -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
        $(pkg-config --cflags $deps))
libs=($(pkg-config --libs $deps))

# The code under test is compiled here with coverage instrumentation (a
# library from ./configure would be invisible to libFuzzer's guidance).
objs=()
awk -f "$src/sql/embed.awk" "$src/sql/schema.sql" >"$out/obj/schema.c" || exit 1
"$CC" "${cflags[@]}" -c -o "$out/obj/schema.o" "$out/obj/schema.c" || exit 1
objs+=("$out/obj/schema.o")
for f in common/util.c common/log.c common/channel.c common/bayeux.c common/wire.c \
         common/config.c common/sha256.c common/token.c \
         dispatcher/map.c dispatcher/msg.c dispatcher/engine.c dispatcher/state.c \
         dispatcher/outbox.c dispatcher/extension.c dispatcher/api.c dispatcher/rules.c \
         dispatcher/persist.c dispatcher/history.c dispatcher/store.c \
         fcgi/http.c; do
    o=$out/obj/$(echo "$f" | tr / _).o
    "$CC" "${cflags[@]}" -c -o "$o" "$src/$f" || exit 1
    objs+=("$o")
done

status=0
summary=()
for t in "${targets[@]}"; do
    if [ ! -f "$src/tests/fuzz/fuzz_$t.c" ]; then
        echo "run-libfuzzer: no target $t" >&2
        exit 2
    fi
    bin=$out/fuzz_$t
    "$CC" "${cflags[@]}" -fsanitize=fuzzer -o "$bin" "$src/tests/fuzz/fuzz_$t.c" \
        "${objs[@]}" "${libs[@]}" || exit 1
    mkdir -p "$out/corpus/$t"
    echo "=== fuzz_$t: $secs s"
    # New inputs go to the first directory; the seeds in the tree stay as
    # they are.
    "$bin" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-" \
        "$out/corpus/$t" "$src/tests/fuzz/corpus/$t" >"$out/fuzz_$t.log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/fuzz_$t.log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$out/fuzz_$t.log" | tail -n 1)
    if [ $rc -eq 0 ]; then
        summary+=("ok     fuzz_$t: ${runs:-?} runs, $cov")
    else
        status=1
        summary+=("FAILED fuzz_$t (exit $rc): see $out/fuzz_$t.log, $out/artifacts/$t-*")
        grep -m 5 -E 'ERROR|check failed|runtime error' "$out/fuzz_$t.log" >&2
    fi
done
printf '%s\n' "${summary[@]}"
exit $status
