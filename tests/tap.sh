# tap.sh - TAP and small helpers for the shell tests (tests/config.sh,
# tests/backends.sh, tests/bench.sh), sourced after they set $tmp, a scratch
# directory.
n=0
failed=0

# check DESCRIPTION COMMAND...: one test, passing when COMMAND succeeds; the
# command's output is shown as TAP comments when it fails.
check() {
    local desc=$1
    shift
    n=$((n + 1))
    if "$@" >"$tmp/out" 2>&1; then
        echo "ok $n - $desc"
    else
        echo "not ok $n - $desc"
        sed 's/^/# /' "$tmp/out"
        failed=1
    fi
}

# free_port: prints a TCP port free on 127.0.0.1 right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_for COMMAND...: until COMMAND succeeds, 10 s at most; fails after.
wait_for() {
    for _ in $(seq 100); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
