#!/bin/bash
# The benchmark tools still work: bench/empty-fcgi behind nginx answers the
# canned replies bayeux-bench's publishers need; bayeux-bench drives it and
# Faye (bench/faye-server.js) and counts what it should; bench/compare
# parses its options. The figures themselves come from bench/compare, never
# from a test.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-$PWD}
tmp=$(mktemp -d)
chmod 755 "$tmp"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
# shellcheck source=tests/tap.sh
. "$top_srcdir/tests/tap.sh"

bench=$top_builddir/bench/bayeux-bench
# json_check FILE EXPR: evaluates a Python expression over the JSON line
# (the generator's last line) bound to d.
json_check() {
    python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().strip().splitlines()[-1]); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2" ||
        { tail -1 "$1"; return 1; }
}

echo "1..9"
check "bench/compare --help" python3 "$top_srcdir/bench/compare" --help

# --- empty-fcgi behind nginx
port=$(free_port)
mkdir -p "$tmp/www"
echo ok >"$tmp/www/index.html"
"$top_builddir/bench/empty-fcgi" --listen "unix:$tmp/empty.sock" --workers 2 &
pids+=($!)
wait_for test -S "$tmp/empty.sock"
cmd=$("$top_srcdir/contrib/webconf" --server nginx --port "$port" --dir "$tmp/nginx" \
    --docroot "$tmp/www" --fcgi "unix:$tmp/empty.sock" --clients 100 --access-log off)
bash -c "exec $cmd" >"$tmp/nginx.out" 2>&1 &
pids+=($!)
wait_for curl -fs "http://127.0.0.1:$port/"
post() {   # post PATH: the body of a POST of one message to /cometd/PATH
    curl -fsS -H 'Content-Type: application/json' -d '[{"channel":"/x"}]' \
        "http://127.0.0.1:$port/cometd/$1"
}
check "empty-fcgi: a handshake gets a clientId" \
    bash -c "$(declare -f post); port=$port; post handshake | grep -q '\"clientId\":\"[0-9a-z]*\",\"successful\":true'"
check "empty-fcgi: a connect succeeds at once" \
    bash -c "$(declare -f post); port=$port; post connect | grep -q '\"channel\":\"/meta/connect\",\"successful\":true'"
check "empty-fcgi: a publish succeeds" \
    bash -c "$(declare -f post); port=$port; post '' | grep -q '\"channel\":\"/bench/0\",\"successful\":true'"

"$bench" --url "http://127.0.0.1:$port/cometd" --subscribers 0 --publishers 4 --rate 0 \
    --duration 1 --warmup 0 --json-only >"$tmp/empty.json" 2>"$tmp/empty.err"
check "bayeux-bench: publish-only against empty-fcgi, every request a successful publish" \
    json_check "$tmp/empty.json" \
    'd["published"] > 0 and d["published"] == d["requests"] and not any(v for k, v in d["errors"].items() if k != "http_status")'

# --- Faye
if [ -d "$top_srcdir/node_modules/faye" ] && command -v node >/dev/null; then
    fport=$(free_port)
    node "$top_srcdir/bench/faye-server.js" --port "$fport" >"$tmp/faye.out" 2>&1 &
    pids+=($!)
    wait_for grep -q listening "$tmp/faye.out"
    "$bench" --url "http://127.0.0.1:$fport/cometd" --subscribers 20 --channels 2 \
        --publishers 4 --rate 200 --duration 2 --warmup 1 --json-only \
        >"$tmp/faye.json" 2>"$tmp/faye.err"
    check "bayeux-bench against Faye: all delivered, none twice, no gap" \
        json_check "$tmp/faye.json" \
        'd["delivered"] > 0 and d["lost"] == 0 and d["duplicates"] == 0 and d["gaps"] == 0 and d["expected"] == d["received"]'
    check "bayeux-bench: a paced rate is kept (200/s asked)" \
        json_check "$tmp/faye.json" '150 <= d["published_per_s"] <= 250'
    check "bayeux-bench: 10 subscribers a channel, so 10 deliveries a publish" \
        json_check "$tmp/faye.json" 'd["total_published"] > 0 and d["expected"] == 10 * d["total_published"]'
    check "bayeux-bench: reports its own CPU time" \
        json_check "$tmp/faye.json" 'd["cpu_user_s"] + d["cpu_sys_s"] > 0'
else
    for t in 1 2 3 4; do
        n=$((n + 1))
        echo "ok $n # SKIP no node_modules/faye (npm ci)"
    done
fi
exit $failed
