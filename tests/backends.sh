#!/bin/bash
# bayeuxctl and the examples in contrib/backends without a web server: the
# command line and its exit statuses (docs/backend.md), the shared config
# file (every key of bayeuxd and bayeux-fcgi accepted, a typo refused), and
# each command against a bayeuxd of our own (database :memory:, sockets in
# a temp dir). The tests with the CometD client behind real web servers are
# in tests/integration/backend.test.mjs. TAP; a check whose tool is missing
# (python3-zmq, php-zmq) is skipped with the reason.
# shellcheck disable=SC2016,SC2317 # bash -c scripts take $1 from their arguments;
# the check functions are called through check(), which shellcheck cannot see.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-$PWD}
ctl=$top_builddir/bayeuxctl
bayeuxd=$top_builddir/bayeuxd
fcgi=$top_builddir/bayeux-fcgi
backends=$top_srcdir/contrib/backends
tmp=$(mktemp -d)
dpid=
cleanup() {
    if [ -n "$dpid" ]; then
        kill -TERM "$dpid" 2>/dev/null
        wait "$dpid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
# shellcheck source=tests/tap.sh
. "$top_srcdir/tests/tap.sh"

if [ ! -x "$ctl" ] || [ ! -x "$bayeuxd" ] || [ ! -x "$fcgi" ]; then
    echo "Bail out! no bayeuxctl, bayeuxd or bayeux-fcgi in $top_builddir (run make)"
    exit 1
fi


skip() {    # skip DESCRIPTION REASON
    n=$((n + 1))
    echo "ok $n - $1 # SKIP $2"
}

status() {  # status N COMMAND...: the command exits with status N
    local want=$1
    shift
    "$@"
    local got=$?
    [ "$got" -eq "$want" ] || { echo "exit status $got, expected $want"; return 1; }
}

# status N COMMAND... with stderr matching a pattern: stderr_is N PATTERN COMMAND...
stderr_is() {
    local want=$1 pattern=$2
    shift 2
    "$@" 2>"$tmp/err"
    local got=$?
    cat "$tmp/err"
    [ "$got" -eq "$want" ] || { echo "exit status $got, expected $want"; return 1; }
    grep -q -- "$pattern" "$tmp/err" || { echo "stderr lacks '$pattern'"; return 1; }
}

nobody=ipc://$tmp/nobody.sock
app=ipc://$tmp/app.sock
events=ipc://$tmp/events.sock
c=("$ctl" --app "$app" --events "$events" --config /dev/null)

echo "1..33"

# ---------------------------------------------------------------- command line
help_lists_all() {
    "$ctl" --help >"$tmp/help" || return 1
    local cmd
    for cmd in publish deliver disconnect sessions session subscribers stats events \
        --app --events --config --timeout --quiet 'Exit status'; do
        grep -q -- "$cmd" "$tmp/help" || { echo "--help lacks $cmd"; return 1; }
    done
}
check "--help lists every command, option and exit status" help_lists_all
check "--version" bash -c '"$1" --version | grep -q "^bayeuxctl [0-9]"' _ "$ctl"
check "no command: usage, exit 2" status 2 "${c[@]}"
check "unknown command: exit 2" stderr_is 2 "unknown command" "${c[@]}" frobnicate
check "unknown option: exit 2" stderr_is 2 "unknown option" "${c[@]}" --frob stats
check "missing argument: exit 2" stderr_is 2 "usage" "${c[@]}" deliver someone
check "extra argument: exit 2" stderr_is 2 "usage" "${c[@]}" stats now
check "a pattern where a channel is needed: exit 2" stderr_is 2 "pattern" "${c[@]}" publish '/a/**' 1
check "not a channel name: exit 2" stderr_is 2 "not a channel" "${c[@]}" subscribers 'a/b'
check "DATA not JSON: exit 2 before any socket" \
    stderr_is 2 "not JSON" "$ctl" --app "$nobody" --timeout 60000 publish /a '{"a":1,}'
check "DATA on stdin not JSON: exit 2" \
    stderr_is 2 "not JSON" bash -c 'printf "[1," | "$@"' _ "$ctl" --app "$nobody" publish /a -
check "a bad --timeout: exit 2" stderr_is 2 "timeout" "${c[@]}" --timeout soon stats
check "no bayeuxd: exit 3 after --timeout" \
    stderr_is 3 "no reply" "$ctl" --config /dev/null --app "$nobody" --timeout 200 stats

# ---------------------------------------------------------------- config file
check "accepts the sample config" status 3 "$ctl" --config "$top_srcdir/contrib/bayeux.conf.sample" \
    --app "$nobody" --timeout 100 stats
# Every key either program declares (from its --help), as the shared file
# may hold them: bayeuxctl must know them all as foreign keys.
all_keys_conf() {
    { "$bayeuxd" --help; "$fcgi" --help; } | sed -n 's/^  --\([a-z-]*\)=.*/\1 = x/p' |
        grep -v '^config ' | sort -u >"$tmp/all.conf"
    [ -s "$tmp/all.conf" ]
}
all_keys_conf
check "accepts every key of bayeuxd and bayeux-fcgi" \
    status 3 "$ctl" --config "$tmp/all.conf" --app "$nobody" --events "$nobody" --timeout 100 stats
printf 'app-endpiont = %s\n' "$app" >"$tmp/typo.conf"
check "refuses an unknown key: exit 2" \
    stderr_is 2 "unknown option" "$ctl" --config "$tmp/typo.conf" stats

# ---------------------------------------------------------------- a live bayeuxd
"$bayeuxd" --dispatcher "ipc://$tmp/d.sock" --database :memory: --app-endpoint "$app" \
    --events-endpoint "$events" --log "$tmp/bayeuxd.log" </dev/null >"$tmp/bayeuxd.out" 2>&1 &
dpid=$!
wait_for test -S "$tmp/app.sock" -a -S "$tmp/events.sock"
printf '# the shared file\ntimeout = 20s\napp-endpoint = "%s"\nevents-endpoint = %s\n' \
    "$app" "$events" >"$tmp/live.conf"
check "reads app-endpoint from the config file" \
    bash -c '"$1" --config "$2" stats | grep -q "\"op\":\"stats\",\"ok\":true"' _ \
    "$ctl" "$tmp/live.conf"
check "a flag wins over the file" \
    status 3 "$ctl" --config "$tmp/live.conf" --app "$nobody" --timeout 100 stats
check "the ipc:// sockets have mode 0660 (app-mode)" \
    bash -c '[ "$(stat -c %a "$1")" = 660 ] && [ "$(stat -c %a "$2")" = 660 ]' _ \
    "$tmp/app.sock" "$tmp/events.sock"

# tcp:// works as well: a second bayeuxd on a loopback port.
tcp_stats() {
    local port pid rc=1
    port=$(free_port)
    "$bayeuxd" --dispatcher "ipc://$tmp/d2.sock" --database :memory: \
        --app-endpoint "tcp://127.0.0.1:$port" --events-endpoint "" \
        --log "$tmp/bayeuxd2.log" </dev/null >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 50); do
        if "$ctl" --config /dev/null --app "tcp://127.0.0.1:$port" --timeout 200 stats |
            grep -q '"ok":true'; then
            rc=0
            break
        fi
    done
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return $rc
}
check "the app endpoint on tcp://127.0.0.1" tcp_stats
check "publish: exit 0, the reply on stdout" \
    bash -c '"$@" | grep -q "\"reached\":0"' _ "${c[@]}" publish /news '{"a":[1,2]}'
check "publish from stdin, --quiet prints nothing" \
    bash -c 'out=$(echo "{\"b\":1}" | "$@") && [ -z "$out" ]' _ "${c[@]}" --quiet publish /news -
check "publish to /service: refused, exit 1" \
    stderr_is 1 "channel_denied" "${c[@]}" publish /service/x 1
check "deliver to an unknown clientId: exit 1" \
    stderr_is 1 "unknown_client" "${c[@]}" deliver nobody /x '"hi"'
check "disconnect an unknown clientId: exit 1" \
    stderr_is 1 "unknown_client" "${c[@]}" disconnect nobody
check "sessions, subscribers, stats" bash -c '"$@" sessions | grep -q "\"count\":0" &&
    "$@" subscribers /news | grep -q "\"subscribers\":\[\]" &&
    "$@" stats | grep -q "\"published\":2"' _ "${c[@]}"
events_stop() {
    "${c[@]}" events >"$tmp/events.out" 2>&1 &
    local pid=$! rc
    sleep 0.3
    kill -"$1" "$pid"
    wait "$pid"
    rc=$?
    [ "$rc" -eq 0 ] || { echo "exit $rc"; cat "$tmp/events.out"; return 1; }
}
check "events: exits 0 on SIGTERM" events_stop TERM
check "events: exits 0 on SIGINT" events_stop INT

# ---------------------------------------------------------------- the examples
check "publish.sh: bash -n" bash -n "$backends/publish.sh"
printf '{"n":1}\n\nnot json\n[2]\n' >"$tmp/lines"
check "publish.sh: publishes the good lines, exit 2 for the bad one" \
    stderr_is 2 "2 published, 1 skipped" env BAYEUXCTL="$ctl" "$backends/publish.sh" \
    "--app=$app" /news "$tmp/lines"
python=
for py in "${BX_PYTHON:-}" python3 /usr/bin/python3; do
    if [ -n "$py" ] && "$py" -c 'import zmq' 2>/dev/null; then
        python=$py
        break
    fi
done
if [ -n "$python" ]; then
    check "echo_service.py --bench publishes" bash -c '"$@" | grep -q "^published 50 in"' _ \
        "$python" "$backends/echo_service.py" --app "$app" --bench 50 /bench
else
    skip "echo_service.py --bench publishes" "no python3 with pyzmq (Debian: python3-zmq)"
fi
if ! command -v php >/dev/null 2>&1; then
    skip "publish.php: php -l" "php is not installed (Debian: php-cli)"
    skip "publish.php publishes" "php is not installed (Debian: php-cli, php-zmq)"
else
    check "publish.php: php -l" php -l "$backends/publish.php"
    if php -r 'exit(extension_loaded("zmq") ? 0 : 1);'; then
        check "publish.php publishes" bash -c '"$@" | grep -q "reached 0 session"' _ \
            php "$backends/publish.php" /news '{"php":true}' "$app"
    else
        skip "publish.php publishes" "php has no zmq extension (Debian: php-zmq)"
    fi
fi
exit 0
