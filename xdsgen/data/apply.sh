#!/bin/sh
# apply.sh: run `xdsgen apply` from cron (or by hand) on a router. POSIX sh; runs under
# OpenWrt's busybox ash. Installed by `xdsgen cron-script /usr/share/xdsgen/apply.sh`,
# which also writes the command of that xdsgen below (cron's PATH may not find it).
#
# Usage: apply.sh [INVENTORY [CONFIG_DIR]]
#
# Environment (arguments win over it):
#   XDSGEN_INVENTORY   the inventory (default: /etc/xdsgen/inventory.yaml)
#   XDSGEN_CONFIG_DIR  where Envoy's files go (default: the inventory's envoy.config_dir)
#   XDSGEN             how to run xdsgen (default: the xdsgen that installed this
#                      script), e.g. "python3 -m xdsgen"
#   XDSGEN_ARGS        more `xdsgen apply` options, split on spaces, e.g. "--verbose --timeout 20"
#   XDSGEN_LOG_TAG     the syslog tag (default: xdsgen)
#
# On a terminal xdsgen's output is shown as it is. Otherwise (cron) it goes to syslog via
# `logger`: priority daemon.notice when apply succeeded, daemon.err when it failed.
# xdsgen prints nothing when an apply succeeds without --verbose, so a quiet cron job
# leaves no log lines. The exit status is xdsgen's: 0 applied or unchanged, 1 invalid
# inventory, 3 Envoy refused (previous files restored), 4 another apply holds the lock,
# 6 a file or Envoy's admin could not be reached (see `xdsgen apply --help`).
#
# crontab -e (OpenWrt: /etc/crontabs/root):
# */15 * * * * /usr/share/xdsgen/apply.sh /etc/xdsgen/inventory.yaml

inventory=${1:-${XDSGEN_INVENTORY:-/etc/xdsgen/inventory.yaml}}
config_dir=${2:-${XDSGEN_CONFIG_DIR:-}}
xdsgen=${XDSGEN:-xdsgen} # default: set by xdsgen cron-script
tag=${XDSGEN_LOG_TAG:-xdsgen}

set -- apply "$inventory"
if [ -n "$config_dir" ]; then
	set -- "$@" --config-dir "$config_dir"
fi
# XDSGEN and XDSGEN_ARGS are split into words on purpose (no arrays in POSIX sh).
# shellcheck disable=SC2086
set -- $xdsgen "$@" ${XDSGEN_ARGS:-}

if [ -t 1 ]; then
	exec "$@"
fi

log() {
	# $1: priority; the message lines come on stdin.
	if command -v logger >/dev/null 2>&1; then
		logger -t "$tag" -p "daemon.$1"
	else
		cat >&2
	fi
}

first=$1
if ! command -v "$first" >/dev/null 2>&1; then
	echo "apply.sh: $first not found (set XDSGEN, e.g. XDSGEN=\"python3 -m xdsgen\")" | log err
	exit 127
fi

output=$("$@" 2>&1)
status=$?
if [ -n "$output" ]; then
	if [ "$status" -eq 0 ]; then
		printf '%s\n' "$output" | log notice
	else
		printf '%s\n' "$output" | log err
	fi
fi
exit "$status"
