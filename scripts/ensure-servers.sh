#!/usr/bin/env bash
# Make sure prometheus, promtool and victoria-metrics are on PATH, and PostgreSQL's initdb and
# pg_ctl on PATH or in Debian's /usr/lib/postgresql/<version>/bin, for the integration tests.
#
# The tests start their own servers on random loopback ports with their own data dirs (a
# throwaway PostgreSQL cluster made by initdb), so the system services the Debian packages
# ship are never used: we keep them from starting during the install and stop them if they
# started anyway.
#
# Exit status: 0 when the binaries are present (or were installed); 1 when they are missing
# and cannot be installed here, but only under CI=true (elsewhere the tests skip).
set -euo pipefail

readonly BINARIES=(prometheus promtool victoria-metrics)
readonly PG_BINARIES=(initdb pg_ctl)
readonly PACKAGES=(prometheus victoria-metrics postgresql)
readonly SERVICES=(prometheus victoria-metrics postgresql)

pg_binary() {
    # Debian keeps the server binaries off PATH, in one folder per major version.
    command -v "$1" 2>/dev/null && return 0
    local found
    found="$(ls -1d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1)"
    [[ -n "$found" ]] && printf '%s\n' "$found"
}

missing() {
    local name
    for name in "${BINARIES[@]}"; do
        command -v "$name" >/dev/null 2>&1 || printf '%s\n' "$name"
    done
    for name in "${PG_BINARIES[@]}"; do
        pg_binary "$name" >/dev/null || printf '%s\n' "$name"
    done
}

report_present() {
    echo "ensure-servers: $(prometheus --version 2>&1 | head -n 1)"
    local vm_version
    # The Debian build prints nothing for -version; fall back to the package version.
    vm_version="$(victoria-metrics -version 2>&1 | head -n 1)"
    if [[ -z "$vm_version" ]] && command -v dpkg-query >/dev/null 2>&1; then
        vm_version="$(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null || true)"
    fi
    echo "ensure-servers: victoria-metrics ${vm_version:-(version unknown)}"
    echo "ensure-servers: $("$(pg_binary initdb)" --version 2>&1 | head -n 1)"
}

give_up() {
    echo "ensure-servers: missing: $*" >&2
    echo "ensure-servers: install them with: sudo apt-get install prometheus victoria-metrics postgresql" >&2
    echo "ensure-servers: (or run this script as root on Debian/Ubuntu)" >&2
    if [[ "${CI:-}" == "true" ]]; then
        echo "ensure-servers: CI=true, so this is an error: integration tests must not skip" >&2
        exit 1
    fi
    echo "ensure-servers: integration tests that need them will be skipped" >&2
    exit 0
}

stop_services() {
    # Only relevant where an init system is running (not in containers); never fatal.
    local service
    for service in "${SERVICES[@]}"; do
        if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
            systemctl disable --now "$service" >/dev/null 2>&1 || true
        elif command -v service >/dev/null 2>&1; then
            service "$service" stop >/dev/null 2>&1 || true
        fi
    done
}

install_packages() {
    local policy=/usr/sbin/policy-rc.d
    if [[ ! -e "$policy" ]]; then
        # invoke-rc.d and deb-systemd-invoke ask policy-rc.d; 101 means "do not start".
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" || return 1
        # shellcheck disable=SC2064  # expand now: remove exactly the file we created
        trap "rm -f '$policy'" EXIT
    fi
    apt-get update || return 1
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${PACKAGES[@]}" \
        || return 1
    stop_services
}

main() {
    local absent
    absent="$(missing | paste -sd ' ' -)"
    if [[ -z "$absent" ]]; then
        report_present
        return 0
    fi
    if [[ "$(id -u)" != 0 ]]; then
        give_up "$absent"
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "ensure-servers: no apt-get here; install the packages your system offers" >&2
        give_up "$absent"
    fi
    echo "ensure-servers: installing ${PACKAGES[*]} (missing: $absent)"
    if ! install_packages; then
        echo "ensure-servers: apt-get failed" >&2
        give_up "$absent"
    fi
    absent="$(missing | paste -sd ' ' -)"
    if [[ -n "$absent" ]]; then
        echo "ensure-servers: still missing after install: $absent" >&2
        exit 1
    fi
    report_present
}

main "$@"
