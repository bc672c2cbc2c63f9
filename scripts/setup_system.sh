#!/usr/bin/env bash
# System packages the browser and PostgreSQL tests use (Debian: chromium, postgresql).
#
# Idempotent and never fatal: when a package is already there it does nothing; when it cannot be installed
# (no root, no apt-get, no network) it says so once and the tests that need it skip with that message.
# Called by `make test` (target `system`); safe to run by hand.
set -uo pipefail

marker_dir="${CTI_SYSTEM_MARKER_DIR:-.venv}"
mkdir -p "$marker_dir"
log="$marker_dir/setup_system.log"

need=()
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    need+=(postgresql)
fi

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi

if [ "${CTI_SKIP_SYSTEM_SETUP:-}" = "1" ]; then
    echo "setup_system: CTI_SKIP_SYSTEM_SETUP=1, not installing ${need[*]} (their tests will skip)" >&2
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_system: no apt-get; cannot install ${need[*]} (their tests will skip)" >&2
    exit 0
fi

as_root=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        echo "setup_system: not root and no passwordless sudo; cannot install ${need[*]} (their tests will skip)" >&2
        exit 0
    fi
fi

echo "setup_system: installing ${need[*]} with apt-get (log: $log)" >&2
export DEBIAN_FRONTEND=noninteractive
if "${as_root[@]}" apt-get update -qq >"$log" 2>&1 \
   && "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >>"$log" 2>&1; then
    echo "setup_system: installed ${need[*]}" >&2
else
    echo "setup_system: apt-get failed for ${need[*]} (see $log); their tests will skip" >&2
fi
exit 0
