# harness.sh - the integration test stack, sourced by nginx.sh, lighttpd.sh
# and apache.sh, which then call "bx_harness SERVER".
#
# It starts, on loopback only and in a fresh temp dir: bayeuxd, the
# responders (nginx, Apache: one "bayeux-fcgi --workers 2" on a unix socket;
# lighttpd: two processes that lighttpd spawns itself, each on its own
# socket as fd 0), and the web server with a config from contrib/webconf.
# Then it runs every tests/integration/*.test.mjs with node's test runner,
# whose TAP output goes straight to automake's tap-driver (top-level tests
# are counted, indented subtests and YAML blocks are not). A trap stops
# everything it started, and when something failed prints the tail of every
# log as TAP comments.
#
# Environment:
#   top_srcdir, top_builddir  set by "make check"; by hand, run from a build
#                             directory: tests/integration/nginx.sh
#   BX_TIMEOUT_MS             advice timeout for bayeuxd (default 2000)
#   BX_MAX_INTERVAL_MS        session max-interval (default 3000)
#   BX_TESTS                  test files to run (default: all *.test.mjs)
#   BX_DISPATCHER_ARGS        extra bayeuxd flags
#   BX_RESPONDER_ARGS         extra bayeux-fcgi flags
#   BX_WRAP                   command prefix for bayeuxd and bayeux-fcgi, e.g.
#                             "valgrind --error-exitcode=99 --leak-check=full"
#                             (a wrapped program that reports errors exits
#                             non-zero, which fails the run)
#   BX_KEEP=1                 keep the temp dir
# Exported to the tests: BX_URL BX_SERVER BX_TIMEOUT_MS BX_MAX_INTERVAL_MS
#   BX_TMP BX_PORT BX_ORIGIN BX_DOCROOT BX_DISPATCHER BX_DISPATCHER_LOG
#   BX_BAYEUXD BX_DISPATCHER_PIDFILE (a test that restarts bayeuxd writes the
#   new pid there with --pidfile so that the cleanup stops it too).

set -u

bx_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top_srcdir=${top_srcdir:-$(cd "$bx_here/../.." && pwd)}
top_builddir=${top_builddir:-$PWD}

BX_TIMEOUT_MS=${BX_TIMEOUT_MS:-2000}
BX_MAX_INTERVAL_MS=${BX_MAX_INTERVAL_MS:-3000}
BX_TMP=
bx_pids=()          # every process we started, stopped in reverse order
bx_names=()
bx_failed=0
bx_stopping=0
bx_node_pid=

# A whole-script skip: tap-driver counts "1..0 # SKIP" as one SKIP result,
# but would add an ERROR for any non-zero exit status (77 included).
bx_skip() {
    echo "1..0 # SKIP $*"
    exit 0
}

bx_bail() {
    echo "Bail out! $*"
    bx_failed=1
    exit 1
}

# Asks the kernel for a free loopback port.
bx_free_port() {
    node -e 'const s = require("net").createServer();
        s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# bx_wait_for WHAT TRIES CMD...: runs CMD every 0.1 s until it succeeds.
bx_wait_for() {
    local what=$1 tries=$2
    shift 2
    while [ "$tries" -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        tries=$((tries - 1))
        sleep 0.1
    done
    echo "# timed out waiting for $what"
    return 1
}

# A server binary on PATH or in the sbin directories a user's PATH may lack.
bx_have() {
    PATH=$PATH:/usr/sbin:/usr/local/sbin:/sbin command -v "$1" >/dev/null 2>&1
}

# bx_start NAME CMD...: starts CMD in the background, its output in
# $BX_TMP/NAME.out, and remembers it for the cleanup.
bx_start() {
    local name=$1
    shift
    "$@" >"$BX_TMP/$name.out" 2>&1 </dev/null &
    bx_pids+=("$!")
    bx_names+=("$name")
}

# True when pid is gone, or a zombie waiting to be reaped.
bx_gone() {
    [ -e "/proc/$1" ] || return 0
    grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# Stops one process: SIGTERM, up to 10 s, then SIGKILL (a failure: the
# programs must stop cleanly on SIGTERM).
bx_stop_pid() {
    local pid=$1 i
    bx_gone "$pid" && return 0
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 100); do
        bx_gone "$pid" && return 0
        sleep 0.1
    done
    echo "# pid $pid ignored SIGTERM for 10 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null
    bx_failed=1
}

bx_print_logs() {
    local f
    for f in "$BX_TMP"/*.out "$BX_TMP"/*.log "$BX_TMP"/state/*.log "$BX_TMP"/sanitizer.*; do
        [ -s "$f" ] || continue
        echo "# ---- ${f#"$BX_TMP"/} (last 40 lines)"
        tail -n 40 "$f" | sed 's/^/# /'
    done
}

bx_cleanup() {
    local status=$? i pid rc extra=()
    [ "$bx_stopping" = 0 ] || return
    bx_stopping=1
    trap - EXIT INT TERM
    [ -n "$BX_TMP" ] || exit "$status"
    [ -z "$bx_node_pid" ] || bx_stop_pid "$bx_node_pid"
    # A bayeuxd restarted by a test is not our child: its pidfile knows it.
    if [ -s "$BX_TMP/bayeuxd.pid" ]; then
        pid=$(cat "$BX_TMP/bayeuxd.pid")
        case " ${bx_pids[*]} " in *" $pid "*) ;; *) extra+=("$pid") ;; esac
    fi
    # Processes that lighttpd or bayeux-fcgi --workers started, should their
    # parent not stop them.
    for pid in "${bx_pids[@]}"; do
        while read -r i; do extra+=("$i"); done < <(pgrep -P "$pid" 2>/dev/null)
    done
    for ((i = ${#bx_pids[@]} - 1; i >= 0; i--)); do
        pid=${bx_pids[i]}
        bx_stop_pid "$pid"
        wait "$pid" 2>/dev/null
        rc=$?
        # 143 = the SIGTERM we sent, for programs that die by it.
        if [ "$rc" -ne 0 ] && [ "$rc" -ne 143 ]; then
            echo "# ${bx_names[i]} (pid $pid) exited with status $rc"
            bx_failed=1
        fi
    done
    for pid in "${extra[@]}"; do
        bx_stop_pid "$pid"
    done
    # A sanitizer report from any of our programs is a failure even when
    # every test passed.
    if compgen -G "$BX_TMP/sanitizer.*" >/dev/null; then
        echo "# sanitizer reports in $BX_TMP"
        bx_failed=1
    fi
    [ "$status" -eq 0 ] || bx_failed=1
    # Logs help with any failure; only a failure the TAP lines did not count
    # (a program's exit status, a sanitizer report) changes the exit status.
    if [ "$bx_failed" -ne 0 ] || [ "${bx_tests_failed:-0}" -ne 0 ]; then
        bx_print_logs
    fi
    if [ "$bx_failed" -ne 0 ] && [ "$status" -eq 0 ]; then
        status=1
    fi
    if [ "${BX_KEEP:-0}" = 1 ]; then
        echo "# kept $BX_TMP"
    else
        rm -rf "$BX_TMP"
    fi
    exit "$status"
}

# Copies the demo page and the CometD browser modules into DIR.
bx_make_docroot() {
    local dir=$1
    mkdir -p "$dir/js/cometd"
    cp -R "$top_srcdir/contrib/demo/." "$dir/"
    cp "$top_srcdir/node_modules/cometd/"*.js "$dir/js/cometd/"
}

# Starts the web server on a fresh port; a port taken between asking and
# binding makes the server exit, and we try another.
bx_start_server() {
    local server=$1 try cmd pid
    shift
    for try in 1 2 3; do
        BX_PORT=$(bx_free_port) || bx_bail "cannot pick a port"
        cmd=$("$top_srcdir/contrib/webconf" --server "$server" --port "$BX_PORT" \
            --dir "$BX_TMP/state" --docroot "$BX_DOCROOT" \
            --timeout-ms "$BX_TIMEOUT_MS" "$@") ||
            bx_bail "webconf failed"
        bx_start "$server" bash -c "exec $cmd"
        pid=${bx_pids[${#bx_pids[@]} - 1]}
        if bx_wait_for "$server on port $BX_PORT" 150 \
            curl -fsS -o /dev/null "http://127.0.0.1:$BX_PORT/"; then
            return 0
        fi
        bx_gone "$pid" || bx_bail "$server started but does not answer"
        echo "# $server did not start on port $BX_PORT (try $try)"
        wait "$pid" 2>/dev/null
        unset 'bx_pids[-1]' 'bx_names[-1]'
    done
    bx_failed=1
    bx_bail "$server does not start"
}

bx_harness() {
    local server=$1 bin
    case "$server" in
        nginx) bin=nginx ;;
        lighttpd) bin=lighttpd ;;
        apache) bin=apache2 ;;
        *) bx_bail "unknown server $server" ;;
    esac
    bx_have "$bin" || { [ "$server" = apache ] && bx_have httpd; } ||
        bx_skip "$bin is not installed"
    command -v node >/dev/null 2>&1 || bx_skip "node is not installed"
    command -v curl >/dev/null 2>&1 || bx_skip "curl is not installed"
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    [ "$major" -ge 20 ] || bx_skip "node $major is too old (20 or later)"
    if [ ! -d "$top_srcdir/node_modules/cometd" ] || [ ! -d "$top_srcdir/node_modules/faye" ]; then
        bx_skip "no node_modules in $top_srcdir (run npm ci there)"
    fi
    local tests=()
    if [ -n "${BX_TESTS:-}" ]; then
        read -r -a tests <<<"$BX_TESTS"
    else
        tests=("$top_srcdir"/tests/integration/*.test.mjs)
        [ -e "${tests[0]}" ] || bx_skip "no tests/integration/*.test.mjs"
    fi
    local bayeuxd=$top_builddir/bayeuxd fcgi=$top_builddir/bayeux-fcgi
    if [ ! -x "$bayeuxd" ] || [ ! -x "$fcgi" ]; then
        bx_bail "$top_builddir has no bayeuxd and bayeux-fcgi (run make, or set top_builddir)"
    fi

    BX_TMP=$(mktemp -d "${TMPDIR:-/tmp}/bx-$server.XXXXXX") || bx_bail "mktemp failed"
    trap bx_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # Servers that drop root (Apache's children) reach the socket and the
    # document root through this directory.
    chmod 755 "$BX_TMP"
    mkdir -p "$BX_TMP/state"
    BX_DOCROOT=$BX_TMP/www
    bx_make_docroot "$BX_DOCROOT"
    # Sanitizer builds write their reports here instead of into a web
    # server's log (lighttpd's children inherit these variables).
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$BX_TMP/sanitizer"
    export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$BX_TMP/sanitizer:print_stacktrace=1"

    BX_DISPATCHER=ipc://$BX_TMP/d.sock
    BX_DISPATCHER_LOG=$BX_TMP/bayeuxd.log
    BX_DISPATCHER_PIDFILE=$BX_TMP/bayeuxd.pid
    local dargs=() rargs=() wrap=()
    read -r -a dargs <<<"${BX_DISPATCHER_ARGS:-}"
    read -r -a rargs <<<"${BX_RESPONDER_ARGS:-}"
    read -r -a wrap <<<"${BX_WRAP:-}"
    bx_start bayeuxd "${wrap[@]}" "$bayeuxd" --dispatcher "$BX_DISPATCHER" \
        --timeout "$BX_TIMEOUT_MS" --max-interval "$BX_MAX_INTERVAL_MS" \
        --log "$BX_DISPATCHER_LOG" --pidfile "$BX_DISPATCHER_PIDFILE" "${dargs[@]}"
    bx_wait_for "bayeuxd's socket" 100 test -S "$BX_TMP/d.sock" ||
        bx_bail "bayeuxd does not start"

    local sock=$BX_TMP/fcgi.sock
    if [ "$server" = lighttpd ]; then
        # lighttpd spawns two responders on "$sock-0" and "$sock-1", each
        # reading its listening socket from fd 0.
        bx_start_server lighttpd --fcgi "unix:$sock" --spawn "$fcgi" --workers 2 \
            --spawn-args "--dispatcher $BX_DISPATCHER --log $BX_TMP/bayeux-fcgi.log ${rargs[*]}"
    else
        bx_start bayeux-fcgi "${wrap[@]}" "$fcgi" --listen "unix:$sock" --workers 2 \
            --dispatcher "$BX_DISPATCHER" --log "$BX_TMP/bayeux-fcgi.log" "${rargs[@]}"
        bx_wait_for "bayeux-fcgi's socket" 100 test -S "$sock" ||
            bx_bail "bayeux-fcgi does not start"
        bx_start_server "$server" --fcgi "unix:$sock"
    fi

    BX_URL=http://127.0.0.1:$BX_PORT/cometd
    BX_ORIGIN=http://127.0.0.1:$BX_PORT
    BX_SERVER=$server
    BX_BAYEUXD=$bayeuxd
    export BX_URL BX_ORIGIN BX_PORT BX_SERVER BX_TIMEOUT_MS BX_MAX_INTERVAL_MS BX_TMP \
        BX_DOCROOT BX_DISPATCHER BX_DISPATCHER_LOG BX_DISPATCHER_PIDFILE BX_BAYEUXD
    echo "# $server on $BX_URL, state in $BX_TMP"

    # Bounded: a hung test must not hold CI forever. In the background so
    # that a signal reaches our trap at once.
    timeout -k 10 "${BX_HARNESS_TIMEOUT:-900}" \
        node --test --test-reporter=tap --test-concurrency=1 "${tests[@]}" </dev/null \
        > >(tee "$BX_TMP/node.tap") &
    bx_node_pid=$!
    wait "$bx_node_pid"
    local status=$?
    bx_node_pid=
    [ "$status" -eq 0 ] || bx_tests_failed=1
    # Failed tests are already counted by their "not ok" lines; exiting non-zero
    # as well would make the TAP driver count them twice. A run that ended
    # without its plan (a crash, the timeout) is an error of its own.
    if [ "$status" -ne 0 ] && grep -q '^1\.\.[0-9]' "$BX_TMP/node.tap" &&
        grep -q '^not ok' "$BX_TMP/node.tap"; then
        status=0
    fi
    exit "$status"
}
