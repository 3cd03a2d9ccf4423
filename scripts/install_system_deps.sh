#!/usr/bin/env bash
# Install the Debian packages the integration tests use (aseba's asebaplayground, xvfb-run,
# chromium for the live-view browser test).
# Best effort: without root or apt these tests skip with a reason.
set -u
need=()
command -v asebaplayground >/dev/null 2>&1 || need+=(aseba)
command -v xvfb-run >/dev/null 2>&1 || need+=(xvfb)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: ${need[*]} missing and cannot be installed here; playground and browser tests will skip" >&2
    exit 0
fi
echo "installing Debian packages: ${need[*]}"
apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null \
    || echo "note: apt-get install ${need[*]} failed; playground and browser tests will skip" >&2
exit 0
