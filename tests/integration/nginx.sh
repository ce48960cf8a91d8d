#!/bin/bash
# The integration tests behind nginx: one bayeux-fcgi with two workers
# sharing one unix socket. See harness.sh.
# shellcheck source=harness.sh source-path=SCRIPTDIR
. "$(dirname "$0")/harness.sh"
bx_harness nginx
