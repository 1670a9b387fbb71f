#!/usr/bin/env bash
# Run the NUT end-to-end tests (port-file and driver mode) against other NUT versions, each in a Debian chroot
# made with debootstrap: trixie ships NUT 2.8.1, sid the newest (2.8.5 at the time of writing). By hand, not in CI.
#
#   sudo ./scripts/nut-matrix.sh [SUITE...] [-- PYTEST-ARGS...]      (default suites: trixie sid)
#
# Chroots are cached in ${NUTBRIDGE_MATRIX_DIR:-/var/tmp/nutbridge-matrix}/<suite> and reused; logs go to
# <that dir>/logs/<suite>.log. NUTBRIDGE_MATRIX_MIRROR overrides the Debian mirror (default: the host's).
# NUTBRIDGE_MATRIX_REFRESH=1 rebuilds the chroots. sid only counts "if it installs": a sid that cannot be
# debootstrapped or installed is reported, not a failure of the run. Exit status: 0 if every suite that
# installed passed, 1 if tests failed, 2 if a non-optional suite could not be set up.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${NUTBRIDGE_MATRIX_DIR:-/var/tmp/nutbridge-matrix}
PACKAGES=(nut-server nut-client socat python3 python3-venv)
OPTIONAL_SUITES=" sid unstable experimental "   # "if it installs"
VENV=/opt/nutbridge-venv                        # inside the chroot: its own Python, not the repo's .venv

usage() { sed -n '2,11s/^# \{0,1\}//p' "$0"; }

suites=()
pytest_args=()
while (($#)); do
    case $1 in
        --) shift; pytest_args=("$@"); break ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
        *) [[ $1 =~ ^[a-z][a-z0-9-]*$ ]] || { echo "not a suite name: $1" >&2; exit 2; }
           suites+=("$1"); shift ;;
    esac
done
((${#suites[@]})) || suites=(trixie sid)

if [ "$(id -u)" != 0 ]; then
    echo "run as root (sudo $0): debootstrap, chroot and mount need it" >&2
    exit 2
fi

log() { printf '\n=== %s\n' "$*"; }

# ---------------------------------------------------------------- host setup

if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap on the host"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

# The host's own Debian mirror (the only one reachable here), from one-line and deb822 sources.
# Prints "URI SUITE" pairs, one per suite of every "deb" entry.
apt_source_pairs() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                          print $i, $(i + 1) }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk 'function flush() { if (types ~ /(^| )deb( |$)/ && enabled != "no")
                                  for (u in uris) for (s in suites) print uris[u], suites[s]
                                delete uris; delete suites; types = ""; enabled = "" }
             /^[ \t]*$/ { flush(); next }
             /^[ \t]*#/ { next }
             tolower($1) == "types:" { $1 = ""; types = $0 }
             tolower($1) == "enabled:" { enabled = tolower($2) }
             tolower($1) == "uris:" { for (i = 2; i <= NF; i++) uris[i] = $i }
             tolower($1) == "suites:" { for (i = 2; i <= NF; i++) suites[i] = $i }
             END { flush() }' "$f"
    done
}

# shellcheck source=/dev/null
host_codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
mirror=${NUTBRIDGE_MATRIX_MIRROR:-}
security_mirror=""
while read -r uri suite; do
    uri=${uri%/}
    if [ -z "$mirror" ] && [[ $suite == "$host_codename" || $suite =~ ^(stable|testing|unstable|sid)$ ]]; then
        mirror=$uri
    fi
    if [ -z "$security_mirror" ] && [[ $suite == *-security || $suite == */updates ]]; then
        security_mirror=$uri
    fi
done < <(apt_source_pairs)
mirror=${mirror:-http://deb.debian.org/debian}
echo "Debian mirror: $mirror${security_mirror:+ (security: $security_mirror)}"

# pip settings for the chroot: the host's index URLs that work from anywhere (http/https, not file:// or
# local find-links), its timeout, and its CA bundle (copied in: this network may inspect TLS with its own CA).
pip_conf() {
    local key value line
    echo "[global]"
    echo "cert = /etc/nutbridge-matrix/ca-bundle.crt"
    command -v python3 >/dev/null || return 0
    while IFS= read -r line; do
        key=${line%%=*}; key=${key#*.}; value=${line#*=}; value=${value//\'/}
        case $key in
            index-url|extra-index-url)
                value=$(tr ' ' '\n' <<<"$value" | grep -E '^https?://' | paste -sd' ' || true)
                [ -z "$value" ] || echo "$key = $value" ;;
            trusted-host|default-timeout|timeout|retries|proxy) echo "$key = $value" ;;
        esac
    done < <(python3 -m pip config list 2>/dev/null) | awk -F' = ' '!seen[$1]++'
}
host_ca_bundle=""
for f in "${PIP_CERT:-}" "${REQUESTS_CA_BUNDLE:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    if [ -n "$f" ] && [ -r "$f" ]; then host_ca_bundle=$f; break; fi
done

# The project's files as they are in the work tree, tracked and untracked-but-not-ignored (other people may
# have uncommitted changes), as a NUL-separated list relative to the repo.
project_files() {
    if git -C "$REPO" -c safe.directory='*' rev-parse --git-dir >/dev/null 2>&1; then
        git -C "$REPO" -c safe.directory='*' ls-files -z -co --exclude-standard |
            while IFS= read -r -d '' f; do [ -e "$REPO/$f" ] && printf '%s\0' "$f"; done  # skip deleted ones
    else
        (cd "$REPO" && find . \( -name .git -o -name .venv -o -name __pycache__ -o -name '*.egg-info' \
            -o -name '.*_cache' \) -prune -o -type f -printf '%P\0')
    fi
}

# ---------------------------------------------------------------- mounts and cleanup

mounted=()   # mount points made by this run, unmounted in reverse order at exit

mount_into() {  # mount_into TARGET ARGS...: mount and remember it
    local target=$1; shift
    mkdir -p "$target" && mount "$@" "$target" || return 1
    mounted+=("$target")
}

# Processes whose root is the chroot: only ours (e.g. a NUT daemon a killed test left behind).
kill_chroot_processes() {
    local dir=$1 p root pids=()
    for p in /proc/[0-9]*; do
        root=$(readlink "$p/root" 2>/dev/null) || continue
        [[ $root == "$dir" ]] && pids+=("${p#/proc/}")
    done
    ((${#pids[@]})) || return 0
    echo "stopping processes left in $dir: ${pids[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    sleep 2
    kill -KILL "${pids[@]}" 2>/dev/null || true
}

unmount_all() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" || echo "could not unmount ${mounted[i]}" >&2
    done
    mounted=()
}

# Mounts below DIR left by an earlier run that was killed hard (deepest first).
stale_mounts() {
    awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

current_dir=""
cleanup() {
    [ -z "$current_dir" ] || kill_chroot_processes "$current_dir"
    unmount_all
    # debootstrap mounts /proc and /sys in the target itself; interrupted, it may leave them behind.
    local m
    [ -z "$current_dir" ] || while read -r m; do umount "$m" || umount -l "$m" || true; done < <(stale_mounts "$current_dir")
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mount_chroot() {
    # Called where set -e does not apply (inside "if !"), hence the explicit returns.
    local dir=$1
    mount_into "$dir/proc" -t proc proc || return 1
    mount_into "$dir/sys" -t sysfs sysfs || return 1
    mount_into "$dir/dev" --bind /dev || return 1          # socat needs /dev/ptmx, the tests /dev/null and friends
    mount_into "$dir/dev/pts" --bind /dev/pts || return 1
    mount_into "$dir/run" -t tmpfs -o mode=0755 tmpfs || return 1  # upsmon's /run/nut/upsmon.pid lands here
    mount_into "$dir/tmp" -t tmpfs -o mode=1777 tmpfs || return 1  # pytest's tmp_path
}

in_chroot() {  # in_chroot DIR CMD...: a clean root environment inside the chroot
    local dir=$1; shift
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        TERM="${TERM:-dumb}" DEBIAN_FRONTEND=noninteractive chroot "$dir" "$@"
}

# ---------------------------------------------------------------- one chroot

# Make (or reuse) the chroot for SUITE with the packages installed. Returns non-zero if it cannot.
prepare_chroot() {
    local suite=$1 dir=$2
    if [ -e "$dir" ] && { [ "${NUTBRIDGE_MATRIX_REFRESH:-}" = 1 ] || [ ! -e "$dir/.nutbridge-matrix-debootstrapped" ] ||
                          ! chroot "$dir" /bin/true 2>/dev/null; }; then
        log "$suite: removing the old or broken chroot $dir"
        local m
        while read -r m; do umount "$m" || umount -l "$m"; done < <(stale_mounts "$dir")
        if [ -n "$(stale_mounts "$dir")" ]; then echo "still mounted below $dir; not removing it" >&2; return 1; fi
        rm -rf --one-file-system "$dir"
    fi
    if [ ! -e "$dir" ]; then
        log "$suite: debootstrap from $mirror into $dir (a few minutes)"
        mkdir -p "$dir"
        if ! debootstrap --variant=minbase "$suite" "$dir" "$mirror" >"$CACHE/logs/$suite-debootstrap.log" 2>&1; then
            echo "debootstrap failed; last lines of $CACHE/logs/$suite-debootstrap.log:" >&2
            tail -n 15 "$CACHE/logs/$suite-debootstrap.log" >&2
            return 1
        fi
        # Stable suites get their point-release and security updates too (trixie's NUT is 2.8.1-5+deb13u1).
        if [[ $OPTIONAL_SUITES != *" $suite "* && $suite != *-* ]]; then
            {
                echo "deb $mirror $suite main"
                echo "deb $mirror $suite-updates main"
                [ -z "$security_mirror" ] || echo "deb $security_mirror $suite-security main"
            } >"$dir/etc/apt/sources.list"
        fi
        touch "$dir/.nutbridge-matrix-debootstrapped"
    fi
    # The mirror may be a frozen snapshot whose Release files are past Valid-Until (sid's last a week).
    echo 'Acquire::Check-Valid-Until "false";' >"$dir/etc/apt/apt.conf.d/90nutbridge-matrix"
    # No daemons started by package scripts inside the chroot.
    printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
    chmod 755 "$dir/usr/sbin/policy-rc.d"
    cp /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true   # name resolution as on the host
    cp /etc/hosts "$dir/etc/hosts" 2>/dev/null || true
    mount_chroot "$dir" || { echo "mounting /proc, /sys, /dev, /run, /tmp in $dir failed" >&2; return 1; }
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        in_chroot "$dir" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "$suite: installing ${missing[*]}"
        if ! { in_chroot "$dir" apt-get update -qq &&
               in_chroot "$dir" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
                >"$CACHE/logs/$suite-install.log" 2>&1; then
            echo "apt-get install failed; last lines of $CACHE/logs/$suite-install.log:" >&2
            tail -n 15 "$CACHE/logs/$suite-install.log" >&2
            return 1
        fi
    fi
}

# tests/nut_stack.py runs /lib/nut/{dummy-ups,upsd,upsmon}, where Debian put them up to 2.8.4. From 2.8.5 the
# drivers are in /usr/libexec/nut and upsd/upsmon are plain binaries in /usr/sbin (no more nut.conf wrapper):
# link them where the tests look, inside the chroot only, and say so.
link_nut_programs() {
    local suite=$1 dir=$2 name where found
    for name in dummy-ups upsd upsmon; do
        [ -e "$dir/lib/nut/$name" ] || [ -L "$dir/lib/nut/$name" ] && continue  # absolute links: -e looks on the host
        found=""
        for where in /usr/libexec/nut /usr/lib/nut /usr/sbin /sbin; do
            if [ -x "$dir$where/$name" ] && [ ! -L "$dir$where/$name" ]; then found=$where/$name; break; fi
        done
        [ -n "$found" ] || { echo "$suite: $name not found in the chroot" >&2; continue; }
        mkdir -p "$dir/lib/nut"
        ln -s "$found" "$dir/lib/nut/$name"
        echo "$suite: harness: /lib/nut/$name is missing here; linked it to $found (tests/nut_stack.py hard-codes /lib/nut)"
    done
}

# Copy the project in, make the venv, install '.[test]'. Returns non-zero on failure.
prepare_project() {
    local suite=$1 dir=$2
    rm -rf "$dir/src"
    mkdir -p "$dir/src" "$dir/etc/nutbridge-matrix"
    project_files | tar -C "$REPO" --null -T - -cf - | tar -C "$dir/src" -xf - || { echo "copying $REPO failed" >&2; return 1; }
    [ -z "$host_ca_bundle" ] || cp "$host_ca_bundle" "$dir/etc/nutbridge-matrix/ca-bundle.crt"
    pip_conf >"$dir/etc/pip.conf"
    [ -n "$host_ca_bundle" ] || sed -i '/^cert = /d' "$dir/etc/pip.conf"
    # A venv made by another Python (sid moved on) is made again.
    local want have
    want=$(in_chroot "$dir" python3 -c 'import sys; print(sys.version)') || return 1
    have=$(in_chroot "$dir" "$VENV/bin/python" -c 'import sys; print(sys.version)' 2>/dev/null || true)
    if [ "$want" != "$have" ]; then
        rm -rf "${dir:?}$VENV"
        in_chroot "$dir" python3 -m venv "$VENV" || return 1
    fi
    log "$suite: pip install '.[test]' (log: $CACHE/logs/$suite-pip.log)"
    if ! in_chroot "$dir" sh -c "cd /src && $VENV/bin/python -m pip install --disable-pip-version-check '.[test]'" \
            >"$CACHE/logs/$suite-pip.log" 2>&1; then
        tail -n 15 "$CACHE/logs/$suite-pip.log" >&2
        return 1
    fi
}

nut_version() {  # "2.8.5 (nut-server 2.8.5-1)" for the table; the full lines are printed by run_suite
    local dir=$1 v pkg
    # "... driver 0.18 (2.8.1)" up to 2.8.4, "Network UPS Tools 2.8.5 release - ..." since
    v=$(in_chroot "$dir" /lib/nut/dummy-ups -V 2>&1 | grep -m1 'Network UPS Tools' |
        sed -n -E 's/.*Network UPS Tools ([0-9][0-9.]*).*/\1/p; t; s/.*\(([0-9][^)]*)\).*/\1/p')
    pkg=$(in_chroot "$dir" dpkg-query -W -f='${Version}' nut-server 2>/dev/null || true)
    echo "${v:-?} (nut-server ${pkg:-?})"
}

# The tests to run: the NUT end-to-end file plus any *nut_version* / *portfile* test file, and driver mode's
# (nutbridge-driver under that NUT's upsdrvctl, upsd and upsmon: tests/nut/test_driver_*.py, test_driver_cmd.py).
test_files() {
    local dir=$1 f
    echo tests/nut/test_nut_e2e.py
    # in tests/ or, since the tests follow the package's folders, in tests/nut/
    for f in "$dir"/src/tests/test_*nut_version*.py "$dir"/src/tests/test_*portfile*.py \
        "$dir"/src/tests/nut/test_*nut_version*.py "$dir"/src/tests/nut/test_*portfile*.py \
        "$dir"/src/tests/nut/test_driver_*.py "$dir"/src/tests/test_driver_cmd.py; do
        [ -e "$f" ] && echo "${f#"$dir"/src/}"
    done | sort -u
}

declare -A result version
run_suite() {
    local suite=$1 dir=$CACHE/$1
    current_dir=$dir
    if ! prepare_chroot "$suite" "$dir"; then
        result[$suite]="could not install"
        return 0
    fi
    link_nut_programs "$suite" "$dir"
    version[$suite]=$(nut_version "$dir")
    log "$suite: $(in_chroot "$dir" /lib/nut/dummy-ups -V 2>&1 | grep -m1 'Network UPS Tools'); package nut-server \
$(in_chroot "$dir" dpkg-query -W -f='${Version}' nut-server)"
    if ! prepare_project "$suite" "$dir"; then
        result[$suite]="pip install failed"
        return 0
    fi
    local files=() f
    while read -r f; do files+=("$f"); done < <(test_files "$dir")
    [ -e "$dir/src/tests/nut/test_nut_e2e.py" ] || { echo "tests/nut/test_nut_e2e.py is missing" >&2; result[$suite]="no tests"; return 0; }
    log "$suite: pytest ${files[*]} ${pytest_args[*]}"
    # A network namespace with only loopback (up): the tests must not talk to anything else.
    local netns=(unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh)
    if ! unshare --net -- true 2>/dev/null || ! command -v ip >/dev/null; then
        echo "(no network namespace here: the tests share the host's network)"
        netns=()
    fi
    local rc=0
    set +e
    "${netns[@]}" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 TERM="${TERM:-dumb}" CI=true \
        chroot "$dir" sh -c 'cd /src && exec "$0" -m pytest -p no:cacheprovider "$@"' "$VENV/bin/python" \
        "${files[@]}" "${pytest_args[@]}" 2>&1 | tee "$CACHE/logs/$suite.log"
    rc=${PIPESTATUS[0]}
    set -e
    kill_chroot_processes "$dir"
    unmount_all
    current_dir=""
    local summary
    summary=$(grep -E '^(=+ )?([0-9]+ [a-z]|no tests ran).* in [0-9.]+s( \(.*\))?( =+)?$' "$CACHE/logs/$suite.log" | tail -n1 |
              sed -E 's/^=+ //; s/ =+$//')
    log "$suite: NUT ${version[$suite]}: ${summary:-no pytest summary line} (pytest exit $rc)"
    case $rc in
        0) result[$suite]="passed: $summary" ;;
        *) result[$suite]="FAILED: ${summary:-pytest exit $rc}" ;;
    esac
}

mkdir -p "$CACHE/logs"
exec 9>"$CACHE/.lock"
flock -n 9 || { echo "another nut-matrix run holds $CACHE/.lock" >&2; exit 2; }

for suite in "${suites[@]}"; do
    run_suite "$suite"
done

status=0
log "summary"
printf '%-10s | %-34s | %s\n' suite "NUT version" result
for suite in "${suites[@]}"; do
    printf '%-10s | %-34s | %s\n' "$suite" "${version[$suite]:--}" "${result[$suite]}"
    case ${result[$suite]} in
        passed*) ;;
        FAILED*) status=1 ;;
        "could not install")
            if [[ $OPTIONAL_SUITES == *" $suite "* ]]; then echo "  ($suite only counts if it installs)"
            elif [ "$status" = 0 ]; then status=2; fi ;;
        *) [ "$status" != 0 ] || status=2 ;;
    esac
done
echo "logs: $CACHE/logs/"
exit "$status"
