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
#   BX_REAL_IP_FROM           the web server trusts X-Forwarded-For from these
#                             (webconf --real-ip-from; default 127.0.0.1: the
#                             tests act as a reverse proxy in front of it)
#   BX_CORS_ORIGINS           the responders' cors-origins (default
#                             http://example.test:8080, the other site the
#                             CORS tests pretend to be)
#   BX_WRAP                   command prefix for bayeuxd and bayeux-fcgi, e.g.
#                             "valgrind --error-exitcode=99 --leak-check=full"
#                             (a wrapped program that reports errors exits
#                             non-zero, which fails the run)
#   BX_DATABASE               bayeuxd's database (default $BX_TMP/bayeuxd.db,
#                             a real file so that a restart finds its state)
#   BX_HISTORY                bayeuxd's history option (default
#                             "/chat/** 1000, /hist/** 1000, /trim/** 5": the
#                             demo's room, and the replay tests' channels;
#                             empty: none)
#   BX_CHROMIUM               the browser reload.test.mjs drives (default
#                             /usr/bin/chromium; without it that test skips)
#   BX_KEEP=1                 keep the temp dir
# Exported to the tests: BX_URL BX_SERVER BX_TIMEOUT_MS BX_MAX_INTERVAL_MS BX_CORS_ORIGINS
#   BX_TMP BX_PORT BX_ORIGIN BX_DOCROOT BX_DISPATCHER BX_DISPATCHER_LOG
#   BX_BAYEUXD BX_DISPATCHER_PIDFILE BX_DATABASE BX_HISTORY BX_CTL, and
#   BX_APP BX_EVENTS (bayeuxd's app endpoint and event stream, docs/backend.md),
#   BX_BAYEUXCTL (the bayeuxctl built beside bayeuxd).
#
# BX_CTL is a script the tests use to kill and restart each piece (see
# bx_ctl below): "$BX_CTL kill-dispatcher KILL", "$BX_CTL start-dispatcher
# [EXTRA-FLAGS]", "$BX_CTL kill-responder KILL workers|all",
# "$BX_CTL start-responder", "$BX_CTL restart-webserver". What it starts is
# recorded in $BX_TMP/ctl/started and stopped by the cleanup like the rest;
# what it kills on purpose is recorded in $BX_TMP/ctl/killed, so that the
# cleanup does not count that exit status as a failure.

set -u

bx_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top_srcdir=${top_srcdir:-$(cd "$bx_here/../.." && pwd)}
top_builddir=${top_builddir:-$PWD}

BX_TIMEOUT_MS=${BX_TIMEOUT_MS:-2000}
BX_MAX_INTERVAL_MS=${BX_MAX_INTERVAL_MS:-3000}
BX_CORS_ORIGINS=${BX_CORS_ORIGINS:-http://example.test:8080}
BX_REAL_IP_FROM=${BX_REAL_IP_FROM-127.0.0.1}
BX_TMP=
bx_pids=()          # every process we started, stopped in reverse order
bx_names=()
bx_failed=0
bx_stopping=0
bx_node_pid=
bx_server=
bx_fcgi_sock=
bx_wcmd=        # the web server's command line, as webconf printed it
bx_dcmd=()      # bayeuxd's command line
bx_rcmd=()      # bayeux-fcgi's (nginx, Apache)
BX_CTL=

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
    local state
    # A status that cannot be read is a process being reaped right now.
    state=$(sed -n 's/^State:[[:space:]]*//p' "/proc/$1/status" 2>/dev/null)
    [ -z "$state" ] || [ "${state#Z}" != "$state" ]
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

# The role of a process we started by name: the cleanup stops the web
# server first, then the responders, then the dispatcher.
bx_role() {
    case "$1" in
        bayeuxd) echo dispatcher ;;
        bayeux-fcgi) echo responder ;;
        *) echo web ;;
    esac
}

# The start time of pid (field 22 of /proc/PID/stat, after the command
# name, which may hold spaces), or nothing if it is gone.
bx_starttime() {
    local st
    st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    st=${st##*) }
    # shellcheck disable=SC2086
    set -- $st
    echo "${20}"
}

# True when a test killed pid on purpose (through $BX_CTL). Pids come back
# (32768 of them, and a long run starts many processes): a live process is
# the one killed only if it started at the same time.
bx_killed() {
    local st
    [ -s "$BX_TMP/ctl/killed" ] || return 1
    if st=$(bx_starttime "$1"); then
        grep -qx "$1 $st" "$BX_TMP/ctl/killed"
    else
        grep -q "^$1 " "$BX_TMP/ctl/killed"
    fi
}

# Stops pid, then whatever children it leaves behind (lighttpd's spawned
# responders, bayeux-fcgi's workers).
bx_stop_tree() {
    local pid=$1 kids=() k
    bx_gone "$pid" && return 0
    mapfile -t kids < <(pgrep -P "$pid" 2>/dev/null)
    bx_stop_pid "$pid"
    for k in "${kids[@]}"; do
        bx_stop_pid "$k"
    done
}

bx_cleanup() {
    local status=$? i pid rc role r started=() kids=() k
    [ "$bx_stopping" = 0 ] || return
    bx_stopping=1
    trap - EXIT INT TERM
    [ -n "$BX_TMP" ] || exit "$status"
    [ -z "$bx_node_pid" ] || bx_stop_pid "$bx_node_pid"
    if [ -s "$BX_TMP/ctl/started" ]; then
        mapfile -t started <"$BX_TMP/ctl/started"
    fi
    for role in web responder dispatcher; do
        # What the tests started through $BX_CTL is not our child: newest
        # first; their exit status is not ours to see.
        for ((i = ${#started[@]} - 1; i >= 0; i--)); do
            read -r r pid <<<"${started[i]}"
            [ "$r" = "$role" ] && bx_stop_tree "$pid"
        done
        # A bayeuxd that a test started by other means, with our pidfile.
        if [ "$role" = dispatcher ] && [ -s "$BX_TMP/bayeuxd.pid" ]; then
            bx_stop_tree "$(cat "$BX_TMP/bayeuxd.pid")"
        fi
        for ((i = ${#bx_pids[@]} - 1; i >= 0; i--)); do
            [ "$(bx_role "${bx_names[i]}")" = "$role" ] || continue
            pid=${bx_pids[i]}
            # Processes that lighttpd or bayeux-fcgi --workers started,
            # should their parent not stop them.
            mapfile -t kids < <(pgrep -P "$pid" 2>/dev/null)
            bx_stop_pid "$pid"
            wait "$pid" 2>/dev/null
            rc=$?
            # 143 = the SIGTERM we sent, for programs that die by it.
            if [ "$rc" -ne 0 ] && [ "$rc" -ne 143 ] && ! bx_killed "$pid"; then
                echo "# ${bx_names[i]} (pid $pid) exited with status $rc"
                bx_failed=1
            fi
            for k in "${kids[@]}"; do
                bx_stop_pid "$k"
            done
        done
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

# ---------------------------------------------------------------- BX_CTL
# What a test needs to kill and restart each piece. harness.sh writes
# $BX_TMP/ctl/ctl, which sources this file, restores the commands the
# harness used (bx_dcmd, bx_rcmd, bx_wcmd) and calls bx_ctl. Every action
# waits until what it did is done (a killed process gone, a started one
# serving) and exits non-zero, with the reason on stderr, if it is not.

bx_ctl_die() {
    echo "ctl: $*" >&2
    exit 1
}

# The pid in a pidfile, if that process is alive.
bx_ctl_alive_pid() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    [ -n "$pid" ] && ! bx_gone "$pid" && echo "$pid"
}

# bx_ctl_kill SIGNAL PID...: signals all at once, records them as killed on
# purpose, and waits up to 15 s until all are gone.
bx_ctl_kill() {
    local sig=$1 pid tries
    shift
    for pid in "$@"; do
        echo "$pid $(bx_starttime "$pid")" >>"$BX_TMP/ctl/killed"
    done
    kill -"$sig" "$@" 2>/dev/null
    for pid in "$@"; do
        for ((tries = 150; tries > 0; tries--)); do
            bx_gone "$pid" && break
            sleep 0.1
        done
        # Judged by the loop alone: checked again, a reaped pid could
        # already belong to a new process (a restarted worker).
        [ "$tries" -gt 0 ] || bx_ctl_die "pid $pid still there 15 s after SIG$sig"
    done
}

# bx_ctl_start ROLE NAME CMD...: starts CMD in the background, output
# appended to $BX_TMP/NAME.out, records it for the cleanup; sets bx_ctl_pid.
bx_ctl_start() {
    local role=$1 name=$2
    shift 2
    "$@" >>"$BX_TMP/$name.out" 2>&1 </dev/null &
    bx_ctl_pid=$!
    echo "$role $bx_ctl_pid" >>"$BX_TMP/ctl/started"
}

# bx_ctl_wait WHAT PID CMD...: waits up to 15 s for CMD to succeed while
# PID lives.
bx_ctl_wait() {
    local what=$1 pid=$2 tries
    shift 2
    for ((tries = 150; tries > 0; tries--)); do
        "$@" >/dev/null 2>&1 && return 0
        bx_gone "$pid" && bx_ctl_die "$what: pid $pid exited (see $BX_TMP/*.out and *.log)"
        sleep 0.1
    done
    bx_ctl_die "$what: not ready after 15 s"
}

bx_ctl_pidfile_is() {
    [ "$(cat "$1" 2>/dev/null)" = "$2" ]
}

# The responders: nginx and Apache: one "bayeux-fcgi --workers 2" we
# started, its workers its children; lighttpd: the processes lighttpd spawned.
bx_ctl_responder_pids() {
    local parent
    if [ "$bx_server" = lighttpd ]; then
        parent=$(bx_ctl_alive_pid "$BX_TMP/state/lighttpd.pid") || return 0
        pgrep -P "$parent" 2>/dev/null
    else
        parent=$(bx_ctl_alive_pid "$BX_TMP/bayeux-fcgi.pid") || return 0
        pgrep -P "$parent" 2>/dev/null
    fi
}

# bx_ctl_count_workers PARENT N: PARENT has N children that were not killed.
bx_ctl_count_workers() {
    local n=0 k
    while read -r k; do
        bx_killed "$k" || n=$((n + 1))
    done < <(pgrep -P "$1" 2>/dev/null)
    [ "$n" -ge "$2" ]
}

bx_ctl_serving() {
    curl -fsS -o /dev/null "http://127.0.0.1:$BX_PORT/"
}

# The size of bayeuxd's log now: bx_ctl_wait_responders looks after it.
bx_ctl_log_mark() {
    stat -c %s "$BX_DISPATCHER_LOG" 2>/dev/null || echo 0
}

bx_ctl_hello_seen() {
    local mark=$1 pid
    shift
    for pid in "$@"; do
        tail -c +"$((mark + 1))" "$BX_DISPATCHER_LOG" 2>/dev/null |
            grep -q "responder connected (pid=$pid)" || return 1
    done
}

# bx_ctl_wait_responders MARK: until every responder process has connected
# to bayeuxd since the log was MARK bytes long (its "responder connected"
# line), so that no request meets a responder still answering 503. At most
# 5 s, and no failure after that: the clients retry a 503 anyway, and a
# log level above info has no such lines.
bx_ctl_wait_responders() {
    local mark=$1 pids=() tries
    for ((tries = 50; tries > 0; tries--)); do
        mapfile -t pids < <(bx_ctl_responder_pids)
        [ "${#pids[@]}" -gt 0 ] && bx_ctl_hello_seen "$mark" "${pids[@]}" && return 0
        sleep 0.1
    done
    echo "ctl: responders not seen connecting to bayeuxd within 5 s" >&2
}

bx_ctl() {
    local action=${1:-help} pid sig which mark pids=()
    shift || true
    mkdir -p "$BX_TMP/ctl"
    case "$action" in
        dispatcher-pid)
            bx_ctl_alive_pid "$BX_DISPATCHER_PIDFILE" || bx_ctl_die "bayeuxd is not running"
            ;;
        kill-dispatcher)
            # kill-dispatcher [SIGNAL]: default KILL (a crash).
            sig=${1:-KILL}
            pid=$(bx_ctl_alive_pid "$BX_DISPATCHER_PIDFILE") ||
                bx_ctl_die "bayeuxd is not running"
            bx_ctl_kill "$sig" "$pid"
            ;;
        start-dispatcher)
            # start-dispatcher [FLAG...]: the harness's command line, the
            # flags appended (a later flag wins over an earlier one).
            if pid=$(bx_ctl_alive_pid "$BX_DISPATCHER_PIDFILE"); then
                bx_ctl_die "bayeuxd is still running (pid $pid)"
            fi
            # A killed bayeuxd leaves its socket file: wait for the new one.
            rm -f "${BX_DISPATCHER#ipc://}"
            mark=$(bx_ctl_log_mark)
            bx_ctl_start dispatcher bayeuxd "${bx_dcmd[@]}" "$@"
            pid=$bx_ctl_pid
            # bayeuxd writes its pidfile once it is bound and ready.
            bx_ctl_wait "bayeuxd" "$pid" bx_ctl_pidfile_is "$BX_DISPATCHER_PIDFILE" "$pid"
            bx_ctl_wait "bayeuxd's socket" "$pid" test -S "${BX_DISPATCHER#ipc://}"
            bx_ctl_wait_responders "$mark"
            echo "$pid"
            ;;
        kill-responder)
            # kill-responder [SIGNAL] [workers|one|all]: workers: the
            # processes that serve requests (bayeux-fcgi restarts them;
            # lighttpd starts them again on the next request); one: one of
            # them; all: bayeux-fcgi and its workers at once, workers first
            # (nginx and Apache only).
            sig=${1:-KILL}
            which=${2:-workers}
            mapfile -t pids < <(bx_ctl_responder_pids)
            [ "${#pids[@]}" -gt 0 ] || bx_ctl_die "no responder processes found"
            if [ "$which" = one ]; then
                pids=("${pids[0]}")
                which=workers
            elif [ "$which" = all ]; then
                [ "$bx_server" != lighttpd ] ||
                    bx_ctl_die "kill-responder all: lighttpd spawns the responders itself"
                pids+=("$(cat "$BX_TMP/bayeux-fcgi.pid")")
            elif [ "$which" != workers ]; then
                bx_ctl_die "kill-responder: workers or all, not $which"
            fi
            mark=$(bx_ctl_log_mark)
            bx_ctl_kill "$sig" "${pids[@]}"
            if [ "$which" = workers ]; then
                if [ "$bx_server" = lighttpd ]; then
                    pid=$(cat "$BX_TMP/state/lighttpd.pid")
                else
                    pid=$(cat "$BX_TMP/bayeux-fcgi.pid")
                fi
                bx_ctl_wait "the responders' new processes" "$pid" \
                    bx_ctl_count_workers "$pid" 2
                bx_ctl_wait_responders "$mark"
            fi
            ;;
        start-responder)
            [ "$bx_server" != lighttpd ] ||
                bx_ctl_die "start-responder: lighttpd spawns the responders itself"
            if pid=$(bx_ctl_alive_pid "$BX_TMP/bayeux-fcgi.pid"); then
                bx_ctl_die "bayeux-fcgi is still running (pid $pid)"
            fi
            # Nobody listens on the old socket any more: wait for the new one.
            rm -f "$bx_fcgi_sock"
            mark=$(bx_ctl_log_mark)
            bx_ctl_start responder bayeux-fcgi "${bx_rcmd[@]}"
            pid=$bx_ctl_pid
            echo "$pid" >"$BX_TMP/bayeux-fcgi.pid"
            bx_ctl_wait "bayeux-fcgi's socket" "$pid" test -S "$bx_fcgi_sock"
            bx_ctl_wait "bayeux-fcgi's workers" "$pid" bx_ctl_count_workers "$pid" 2
            bx_ctl_wait_responders "$mark"
            echo "$pid"
            ;;
        restart-responder)
            # restart-responder [SIGNAL]: kill-responder SIGNAL all, then
            # start-responder.
            bx_ctl kill-responder "${1:-KILL}" all
            bx_ctl start-responder
            ;;
        restart-webserver)
            # restart-webserver [SIGNAL]: stops the web server (default
            # TERM: nginx's fast shutdown, which closes every connection)
            # and starts it again with the same configuration and port.
            sig=${1:-TERM}
            pid=$(bx_ctl_alive_pid "$BX_TMP/state/$bx_server.pid") ||
                bx_ctl_die "$bx_server is not running"
            bx_ctl_kill "$sig" "$pid"
            bx_ctl_start web "$bx_server" bash -c "exec $bx_wcmd"
            pid=$bx_ctl_pid
            bx_ctl_wait "$bx_server on port $BX_PORT" "$pid" bx_ctl_serving
            echo "$pid"
            ;;
        *)
            bx_ctl_die "unknown action $action (kill-dispatcher [SIG], start-dispatcher" \
                "[FLAG...], dispatcher-pid, kill-responder [SIG] [workers|one|all]," \
                "start-responder, restart-responder [SIG], restart-webserver [SIG])"
            ;;
    esac
}

# Writes $BX_TMP/ctl/ctl (see above) with the commands the harness used.
bx_write_ctl() {
    mkdir -p "$BX_TMP/ctl"
    : >"$BX_TMP/ctl/started"
    : >"$BX_TMP/ctl/killed"
    {
        echo '#!/bin/bash'
        echo '# Generated by harness.sh: kill and restart the pieces of this test stack.'
        printf '. %q\n' "$bx_here/harness.sh"
        local v
        for v in BX_TMP BX_PORT BX_DISPATCHER BX_DISPATCHER_PIDFILE BX_DISPATCHER_LOG \
            bx_server bx_fcgi_sock bx_wcmd; do
            printf '%s=%q\n' "$v" "${!v}"
        done
        printf 'bx_dcmd=(%s)\n' "$(printf '%q ' "${bx_dcmd[@]}")"
        if [ "${#bx_rcmd[@]}" -gt 0 ]; then
            printf 'bx_rcmd=(%s)\n' "$(printf '%q ' "${bx_rcmd[@]}")"
        else
            echo 'bx_rcmd=()'
        fi
        echo 'bx_ctl "$@"'
    } >"$BX_TMP/ctl/ctl"
    chmod 755 "$BX_TMP/ctl/ctl"
    BX_CTL=$BX_TMP/ctl/ctl
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
            --timeout-ms "$BX_TIMEOUT_MS" --real-ip-from "$BX_REAL_IP_FROM" "$@") ||
            bx_bail "webconf failed"
        bx_start "$server" bash -c "exec $cmd"
        pid=${bx_pids[${#bx_pids[@]} - 1]}
        if bx_wait_for "$server on port $BX_PORT" 150 \
            curl -fsS -o /dev/null "http://127.0.0.1:$BX_PORT/"; then
            bx_wcmd=$cmd
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
    BX_DATABASE=${BX_DATABASE:-$BX_TMP/bayeuxd.db}
    BX_APP=ipc://$BX_TMP/app.sock
    BX_EVENTS=ipc://$BX_TMP/events.sock
    BX_HISTORY=${BX_HISTORY-/chat/** 1000, /hist/** 1000, /trim/** 5}
    local dargs=() rargs=() wrap=()
    read -r -a dargs <<<"${BX_DISPATCHER_ARGS:-}"
    read -r -a rargs <<<"${BX_RESPONDER_ARGS:-}"
    read -r -a wrap <<<"${BX_WRAP:-}"
    # The whole command line is kept (bx_dcmd) so that $BX_CTL can start
    # bayeuxd again exactly as it was.
    bx_dcmd=("${wrap[@]}" "$bayeuxd" --dispatcher "$BX_DISPATCHER"
        --timeout "$BX_TIMEOUT_MS" --max-interval "$BX_MAX_INTERVAL_MS"
        --log "$BX_DISPATCHER_LOG" --pidfile "$BX_DISPATCHER_PIDFILE"
        --database "$BX_DATABASE" --app-endpoint "$BX_APP" --events-endpoint "$BX_EVENTS")
    [ -z "$BX_HISTORY" ] || bx_dcmd+=(--history "$BX_HISTORY")
    bx_dcmd+=("${dargs[@]}")
    bx_start bayeuxd "${bx_dcmd[@]}"
    bx_wait_for "bayeuxd's socket" 100 test -S "$BX_TMP/d.sock" ||
        bx_bail "bayeuxd does not start"

    local sock=$BX_TMP/fcgi.sock
    bx_fcgi_sock=$sock
    bx_server=$server
    if [ "$server" = lighttpd ]; then
        # lighttpd spawns two responders on "$sock-0" and "$sock-1", each
        # reading its listening socket from fd 0.
        local sargs="--dispatcher $BX_DISPATCHER --log $BX_TMP/bayeux-fcgi.log"
        sargs+=" --cors-origins $BX_CORS_ORIGINS ${rargs[*]}"
        bx_start_server lighttpd --fcgi "unix:$sock" --spawn "$fcgi" --workers 2 \
            --spawn-args "$sargs"
    else
        bx_rcmd=("${wrap[@]}" "$fcgi" --listen "unix:$sock" --workers 2
            --dispatcher "$BX_DISPATCHER" --log "$BX_TMP/bayeux-fcgi.log"
            --cors-origins "$BX_CORS_ORIGINS" "${rargs[@]}")
        bx_start bayeux-fcgi "${bx_rcmd[@]}"
        echo "${bx_pids[${#bx_pids[@]} - 1]}" >"$BX_TMP/bayeux-fcgi.pid"
        bx_wait_for "bayeux-fcgi's socket" 100 test -S "$sock" ||
            bx_bail "bayeux-fcgi does not start"
        bx_start_server "$server" --fcgi "unix:$sock"
    fi
    bx_write_ctl

    BX_URL=http://127.0.0.1:$BX_PORT/cometd
    BX_ORIGIN=http://127.0.0.1:$BX_PORT
    BX_SERVER=$server
    BX_BAYEUXD=$bayeuxd
    BX_BAYEUXCTL=$top_builddir/bayeuxctl
    export BX_URL BX_ORIGIN BX_PORT BX_SERVER BX_TIMEOUT_MS BX_MAX_INTERVAL_MS BX_TMP \
        BX_DOCROOT BX_DISPATCHER BX_DISPATCHER_LOG BX_DISPATCHER_PIDFILE BX_BAYEUXD \
        BX_DATABASE BX_HISTORY BX_CTL BX_APP BX_EVENTS BX_BAYEUXCTL BX_CORS_ORIGINS \
        BX_REAL_IP_FROM
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
