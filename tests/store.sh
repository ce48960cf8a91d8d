#!/bin/bash
# One bayeuxd per database and per endpoint, and no silent death: a second
# bayeuxd (same database, same ipc:// or tcp:// endpoint) is refused with
# the holder named; --check-db on a database in use says so; ./quickstart
# refuses a second run on the same state; a database whose disk fills up,
# whose files become immutable or are deleted stops bayeuxd at once with a
# log line and its own exit status (never a signal), and nothing answered
# successful is lost; a start on a full disk exits 4 at once (docs/deploy.md,
# "Exit statuses"). Publishes go through the app endpoint (bayeuxctl), whose
# replies wait for the group commit like a client's. The disk checks need
# root (tmpfs mounts, chattr); without it they are skipped with the reason.
# shellcheck disable=SC2016 # bash -c scripts take $1 from their arguments.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-$PWD}
bayeuxd=$top_builddir/bayeuxd
ctl=$top_builddir/bayeuxctl
tmp=$(mktemp -d)
pids=()
mounts=()
cleanup() {
    local p m
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    chattr -R -i "$tmp" 2>/dev/null
    for m in "${mounts[@]}"; do
        umount "$m" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
# shellcheck source=tests/tap.sh
. "$top_srcdir/tests/tap.sh"

if [ ! -x "$bayeuxd" ] || [ ! -x "$ctl" ]; then
    echo "Bail out! no bayeuxd or bayeuxctl in $top_builddir (run make)"
    exit 1
fi

skip() {    # skip DESCRIPTION REASON
    n=$((n + 1))
    echo "ok $n - $1 # SKIP $2"
}

now_ms() { date +%s%3N; }

# figure TEXT: a measurement, printed as a TAP comment at the end.
figure() {
    echo "$*"
    echo "$*" >>"$tmp/figures"
}

# start NAME DB [OPTIONS...]: a bayeuxd with its sockets in $tmp/NAME/,
# history kept on /t/**; its pid in $bd. Waits for its app endpoint.
start() {
    local name=$1 db=$2
    shift 2
    mkdir -p "$tmp/$name"
    "$bayeuxd" --database "$db" --dispatcher "ipc://$tmp/$name/d.sock" \
        --app-endpoint "ipc://$tmp/$name/app.sock" --events-endpoint "" \
        --history "/t/** 100000" --log "$tmp/$name.log" "$@" </dev/null &
    bd=$!
    pids+=("$bd")
    wait_for test -S "$tmp/$name/app.sock"
}

# exits_with STATUS PID: waits for PID (10 s at most) and checks its status.
exits_with() {
    local want=$1 pid=$2 got
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    wait "$pid"
    got=$?
    [ "$got" -eq "$want" ] || { echo "exit status $got, expected $want"; return 1; }
}

# publish NAME [SIZE]: one publish of SIZE bytes (default 10) to /t/a;
# succeeds when bayeuxd answered ok.
publish() {
    local data
    data=$(head -c "${2:-10}" /dev/zero | tr '\0' x)
    "$ctl" --app "ipc://$tmp/$1/app.sock" --config /dev/null --quiet --timeout 1500 \
        publish /t/a "\"$data\"" >/dev/null 2>&1
}

# history_rows DB: the history rows --check-db counts in DB.
history_rows() {
    "$bayeuxd" --check-db --database "$1" 2>&1 | sed -n 's/.* \([0-9]*\) history$/\1/p'
}

echo "1..14"

# ---------------------------------------------------------------- one per database
start one "$tmp/one.db"
first=$bd
refused_db() {
    "$bayeuxd" --database "$tmp/one.db" --dispatcher "ipc://$tmp/other.sock" \
        --app-endpoint "" --events-endpoint "" 2>&1 | tee "$tmp/second.out"
    local rc=${PIPESTATUS[0]}
    [ "$rc" -eq 3 ] || { echo "exit status $rc, expected 3"; return 1; }
    grep -q "database $tmp/one.db: in use by another process (pid $first, bayeuxd)" \
        "$tmp/second.out"
}
check "a second bayeuxd on the same database: exit 3, naming the first one's pid" refused_db
sed 's/^/# /' "$tmp/second.out" | head -2

refused_endpoint() {   # refused_endpoint KIND ARGS...: exit 3, the first one untouched
    local kind=$1 ino_before ino_after
    shift
    ino_before=$(stat -c %i "$tmp/one/d.sock")
    "$bayeuxd" --database "$tmp/$kind.db" --events-endpoint "" "$@" >"$tmp/ep.out" 2>&1
    local rc=$?
    cat "$tmp/ep.out"
    ino_after=$(stat -c %i "$tmp/one/d.sock")
    [ "$rc" -eq 3 ] || { echo "exit status $rc, expected 3"; return 1; }
    grep -q "is served by another process" "$tmp/ep.out" || return 1
    [ "$ino_before" = "$ino_after" ] || { echo "the socket file was replaced"; return 1; }
    publish one
}
check "the same ipc:// dispatcher endpoint: exit 3, the first one keeps its socket" \
    refused_endpoint dispatcher --dispatcher "ipc://$tmp/one/d.sock" --app-endpoint ""
grep -q "(pid $first, bayeuxd)" "$tmp/ep.out" || echo "# (the pid was not named)"
check "the same ipc:// app endpoint: exit 3" \
    refused_endpoint app --dispatcher "ipc://$tmp/app-d.sock" \
    --app-endpoint "ipc://$tmp/one/app.sock"

port=$(free_port)
start tcp "$tmp/tcp.db" --dispatcher "tcp://127.0.0.1:$port"
check "the same tcp:// endpoint: exit 3, with a clear message" \
    refused_endpoint tcp2 --dispatcher "tcp://127.0.0.1:$port" --app-endpoint ""

check_in_use() {
    "$bayeuxd" --check-db --database "$tmp/one.db" >"$tmp/chk.out" 2>&1
    local rc=$?
    cat "$tmp/chk.out"
    [ "$rc" -eq 3 ] && grep -q "in use by another process (pid $first" "$tmp/chk.out" &&
        grep -q "bayeuxctl backup" "$tmp/chk.out"
}
check "--check-db on a database in use: exit 3, says so and how to check a copy" check_in_use
check_copy() {
    publish one || return 1
    (cd "$tmp" && "$ctl" --app "ipc://$tmp/one/app.sock" --config /dev/null backup copy.db) ||
        return 1
    local rows
    rows=$(history_rows "$tmp/copy.db")
    echo "the copy holds $rows history rows"
    [ -n "$rows" ] && [ "$rows" -ge 1 ]
}
check "bayeuxctl backup: a copy as of the last commit, checked while bayeuxd runs" check_copy

# ---------------------------------------------------------------- quickstart
qs_second_run() {
    bash -c '. "$1"; lock_state "$2"; sleep 30' _ "$top_srcdir/quickstart" "$tmp/qs" \
        >/dev/null 2>&1 &
    local holder=$! rc=0
    wait_for test -s "$tmp/qs/lock"
    bash -c '. "$1"; lock_state "$2"; echo "not refused"' _ "$top_srcdir/quickstart" \
        "$tmp/qs" >"$tmp/qs.out" 2>&1 || rc=$?
    kill "$holder" 2>/dev/null
    wait "$holder" 2>/dev/null
    cat "$tmp/qs.out"
    [ "$rc" -ne 0 ] && grep -q "already runs .* (pid $holder)" "$tmp/qs.out" &&
        grep -q "QUICKSTART_STATE=" "$tmp/qs.out" || return 1
    # Once the first run is gone, the state is free again.
    bash -c '. "$1"; lock_state "$2"' _ "$top_srcdir/quickstart" "$tmp/qs"
}
check "./quickstart refuses a second run on the same state, says why and how to run two" \
    qs_second_run

unit_has() {
    grep -q "^RestartPreventExitStatus=.*\b3\b.*\b4\b.*\b5\b" \
        "$top_srcdir/contrib/systemd/bayeuxd.service"
}
check "the systemd unit does not restart on statuses 3, 4 and 5" unit_has

# ---------------------------------------------------------------- faults
if [ "$(id -u)" -ne 0 ]; then
    for d in "a full disk while publishing: exit 4; restart on it: exit 4" \
        "files made immutable while publishing: exit 5" \
        "files made immutable while idle: exit 5" \
        "files deleted while publishing: exit 5" \
        "files deleted while idle: exit 5" \
        "a start on a read-only filesystem: exit 5"; do
        skip "$d" "not root (tmpfs mounts and chattr need it)"
    done
    exit $failed
fi

# mount_tmpfs DIR SIZE
mount_tmpfs() {
    mkdir -p "$1" && mount -t tmpfs -o "size=$2" tmpfs "$1" && mounts+=("$1")
}

disk_full() {
    mount_tmpfs "$tmp/small" 2m || return 1
    start full "$tmp/small/db"
    local pid=$bd ok=0 t0
    for _ in $(seq 200); do
        publish full 50000 || break
        ok=$((ok + 1))
    done
    t0=$(now_ms)
    exits_with 4 "$pid" || return 1
    figure "$ok publishes answered before the disk was full; bayeuxd gone $(( $(now_ms) - t0 )) ms after the first unanswered one"
    grep "ERROR" "$tmp/full.log"
    grep -q "free space on the database's filesystem" "$tmp/full.log" || return 1
    # The restart on the full disk: refused at once.
    t0=$(now_ms)
    "$bayeuxd" --database "$tmp/small/db" --dispatcher "ipc://$tmp/full/d.sock" \
        --app-endpoint "" --events-endpoint "" --history "/t/** 100000" \
        >"$tmp/full2.out" 2>&1
    local rc=$?
    figure "restart on the full disk: exit $rc in $(( $(now_ms) - t0 )) ms"
    cat "$tmp/full2.out"
    [ "$rc" -eq 4 ] && grep -q "its filesystem is full" "$tmp/full2.out" || return 1
    # With room again, everything answered is there.
    mount -o remount,size=20m "$tmp/small" || return 1
    local rows
    rows=$(history_rows "$tmp/small/db")
    echo "answered $ok, stored $rows"
    [ "$ok" -gt 0 ] && [ -n "$rows" ] && [ "$rows" -ge "$ok" ]
}
check "a full disk while publishing: exit 4, nothing answered is lost; restart on it: exit 4" \
    disk_full

# fault NAME ACTION BUSY: publishes, then ACTION on the database's files;
# BUSY: publish right after (the commit finds it), else wait idle.
fault() {
    local name=$1 action=$2 busy=$3 db=$tmp/$1/db t0 after=0
    mkdir -p "$tmp/$name"
    start "$name" "$db"
    local pid=$bd
    publish "$name" && publish "$name" || return 1
    t0=$(now_ms)
    case $action in
        immutable) chattr +i "$db" "$db-wal" || return 1 ;;
        deleted) rm -f "$db" "$db-wal" ;;
    esac
    local pp=
    if [ "$busy" = busy ]; then
        publish "$name" &
        pp=$!
    fi
    exits_with 5 "$pid" || return 1
    figure "$name: bayeuxd exited 5 $(( $(now_ms) - t0 )) ms after the files were made $action"
    if [ -n "$pp" ] && wait "$pp"; then
        after=1
    fi
    grep "ERROR" "$tmp/$name.log"
    [ "$after" -eq 0 ] || { echo "a publish was answered after the fault"; return 1; }
    grep -q "stopping, without answering" "$tmp/$name.log"
}
check "files made immutable while publishing: exit 5, no signal, nothing answered after" \
    fault imm-busy immutable busy
check "files made immutable while idle: exit 5, noticed by the watch" \
    fault imm-idle immutable idle
check "files deleted while publishing: exit 5, nothing answered after" \
    fault del-busy deleted busy
check "files deleted while idle: exit 5, noticed by the watch" fault del-idle deleted idle

# A filesystem cannot be remounted read-only under a file open for writing
# (EBUSY): the start on one is what can be tested.
read_only() {
    mount_tmpfs "$tmp/ro" 8m || return 1
    start ro "$tmp/ro/db"
    publish ro || return 1
    kill -TERM "$bd"
    exits_with 0 "$bd" || return 1
    mount -o remount,ro "$tmp/ro" || return 1
    "$bayeuxd" --database "$tmp/ro/db" --dispatcher "ipc://$tmp/ro/d.sock" \
        --app-endpoint "" --events-endpoint "" >"$tmp/ro.out" 2>&1
    local rc=$?
    cat "$tmp/ro.out"
    [ "$rc" -eq 5 ] || { echo "exit status $rc, expected 5"; return 1; }
    grep -q "cannot be opened for writing" "$tmp/ro.out"
}
check "a start on a read-only filesystem: exit 5, says so" read_only
[ -f "$tmp/figures" ] && sed 's/^/# /' "$tmp/figures"
exit $failed
