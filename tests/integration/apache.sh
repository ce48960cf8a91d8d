#!/bin/bash
# The integration tests behind Apache mod_proxy_fcgi: one bayeux-fcgi with
# two workers on a unix socket. See harness.sh.
# shellcheck source=harness.sh source-path=SCRIPTDIR
. "$(dirname "$0")/harness.sh"
bx_harness apache
