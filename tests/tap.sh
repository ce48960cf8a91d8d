# tap.sh - TAP for the shell tests (tests/config.sh, tests/backends.sh),
# sourced after they set $tmp, a scratch directory.
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
