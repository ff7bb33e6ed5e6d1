#!/usr/bin/env bash
# build-test-image.sh — build the small local image lambdad's docker tests use.
#
# No container registry is reachable from the machines this project runs on,
# so the public.ecr.aws/lambda base images cannot be pulled. Instead this
# script debootstraps a minimal Debian bookworm (minbase) with python3,
# nodejs and ca-certificates from the Debian mirror the machine already uses,
# strips docs/locales/apt lists, and imports the tree through the Docker
# Engine API (curl --unix-socket; no docker CLI needed) as
#
#     lambdad-test/base:bookworm
#
# It is a *plain* image: no /lambda-entrypoint.sh, no RIC. lambdad runs its
# own stdlib-only bootstraps in it. Map runtimes onto it with e.g.
#     lambdad --lambda-image python3.12=lambdad-test/base:bookworm
#
# Caching: if the image already exists, nothing is done (exit 0). The
# stripped rootfs tarball is kept in ~/.cache/lambdad/ so a rebuild after
# the image was removed only re-imports it (seconds).
#
# Usage: tools/build-test-image.sh [--force] [--fresh] [--quiet] [--print-env] [--tag-aws-names]
#   --force          re-import the image even if it exists (reuses the cached rootfs)
#   --fresh          also discard the cached rootfs tarball and debootstrap again
#   --quiet          print only the image name on stdout
#   --print-env      print LAMBDAD_LAMBDA_IMAGES=python3.9=IMAGE,...,nodejs22.x=IMAGE
#                    (every python/nodejs runtime mapped onto the image) as the
#                    last stdout line, for e2e tests: eval "$(... --quiet --print-env | tail -1)"
#   --tag-aws-names  also tag the image as public.ecr.aws/lambda/python:3.X and
#                    .../nodejs:NN so lambdad's default runtime map finds it locally
#                    (it is NOT an AWS base image: no /lambda-entrypoint.sh)
# Environment:
#   DOCKER_HOST            unix:///path or tcp://host:port (default unix:///var/run/docker.sock)
#   LAMBDAD_DEBIAN_MIRROR  Debian mirror (default: the one in /etc/apt/sources.list*)
#   LAMBDAD_TEST_IMAGE     image name (default lambdad-test/base:bookworm)
#   LAMBDAD_CACHE_DIR      cache dir (default ~/.cache/lambdad)
# Must run as root (debootstrap). Non-interactive.
set -euo pipefail

IMAGE="${LAMBDAD_TEST_IMAGE:-lambdad-test/base:bookworm}"
SUITE=bookworm
PACKAGES="python3,nodejs,ca-certificates"
CACHE_DIR="${LAMBDAD_CACHE_DIR:-${HOME:-/root}/.cache/lambdad}"
# The cache key changes when the package set or suite changes.
CACHE_TAR="$CACHE_DIR/rootfs-$SUITE-minbase-$(echo "$PACKAGES" | md5sum | cut -c1-8).tar.gz"
API=v1.41
FORCE=0
FRESH=0
QUIET=0
PRINT_ENV=0
TAG_AWS=0
PY_RUNTIMES="3.9 3.10 3.11 3.12 3.13"
NODE_RUNTIMES="18 20 22"

for a in "$@"; do
    case "$a" in
    --force) FORCE=1 ;;
    --fresh) FORCE=1; FRESH=1 ;;
    --quiet) QUIET=1 ;;
    --print-env) PRINT_ENV=1 ;;
    --tag-aws-names) TAG_AWS=1 ;;
    -h | --help) sed -n '2,38p' "$0"; exit 0 ;;
    *) echo "build-test-image: unknown argument: $a" >&2; exit 2 ;;
    esac
done

say() { if [ "$QUIET" = 0 ]; then echo "build-test-image: $*"; fi; }
die() { echo "build-test-image: error: $*" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
need_pkg() { # need_pkg <command> <debian package>
    command -v "$1" >/dev/null 2>&1 && return 0
    [ "$(id -u)" = 0 ] || die "$1 is missing and we are not root to install $2"
    say "installing $2"
    apt-get update -qq >/dev/null && apt-get install -y -qq "$2" >/dev/null || die "apt-get install $2 failed"
}
need_pkg curl curl

# --- Engine API over curl ------------------------------------------------
DH="${DOCKER_HOST:-unix:///var/run/docker.sock}"
case "$DH" in
unix://*) CURL_TARGET=(--unix-socket "${DH#unix://}"); BASE="http://docker/$API" ;;
tcp://*) CURL_TARGET=(); BASE="http://${DH#tcp://}/$API" ;;
*) die "unsupported DOCKER_HOST '$DH' (use unix:///path or tcp://host:port)" ;;
esac
api() { # api <curl args...>: prints the body, fails on HTTP >= 400
    curl -sS --connect-timeout 2 --fail-with-body "${CURL_TARGET[@]}" "$@"
}
urlenc() { # percent-encode everything but unreserved characters (pure bash)
    local s="$1" out="" c i
    for ((i = 0; i < ${#s}; i++)); do
        c="${s:i:1}"
        case "$c" in
        [a-zA-Z0-9.~_-]) out+="$c" ;;
        *) out+=$(printf '%%%02X' "'$c") ;;
        esac
    done
    printf '%s' "$out"
}

api --max-time 10 "$BASE/_ping" >/dev/null 2>&1 || die "Docker engine not reachable at $DH"

image_exists() { api --max-time 10 -o /dev/null "$BASE/images/$(urlenc "$1")/json" 2>/dev/null; }

finish() { # aliases and the final output, for both the cached and the built case
    local v
    if [ "$TAG_AWS" = 1 ]; then
        for v in $PY_RUNTIMES; do tag_as public.ecr.aws/lambda/python "$v"; done
        for v in $NODE_RUNTIMES; do tag_as public.ecr.aws/lambda/nodejs "$v"; done
    fi
    [ "$QUIET" = 1 ] && echo "$IMAGE"
    if [ "$PRINT_ENV" = 1 ]; then
        local m=""
        for v in $PY_RUNTIMES; do m="$m${m:+,}python$v=$IMAGE"; done
        for v in $NODE_RUNTIMES; do m="$m,nodejs$v.x=$IMAGE"; done
        echo "LAMBDAD_LAMBDA_IMAGES=$m"
    fi
    exit 0
}
tag_as() { # tag_as <repo> <tag>
    api --max-time 30 -o /dev/null -X POST \
        "$BASE/images/$(urlenc "$IMAGE")/tag?repo=$(urlenc "$1")&tag=$(urlenc "$2")" ||
        die "tagging $IMAGE as $1:$2 failed"
    say "tagged $1:$2"
}

if [ "$FORCE" = 0 ] && image_exists "$IMAGE"; then
    say "image $IMAGE already exists (use --force to rebuild)"
    finish
fi

# --- rootfs tarball (cached) ---------------------------------------------
find_mirror() {
    if [ -n "${LAMBDAD_DEBIAN_MIRROR:-}" ]; then echo "$LAMBDAD_DEBIAN_MIRROR"; return; fi
    local f m=""
    # deb822 .sources: first URIs of a stanza whose Suites has the suite itself
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        m=$(awk -v s="$SUITE" '
            /^[[:space:]]*$/ { if (u != "" && ok) { print u; exit } u=""; ok=0; next }
            /^URIs:/ { u=$2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) ok=1 }
            END { if (u != "" && ok) print u }' "$f" | head -1)
        [ -n "$m" ] && break
    done
    if [ -z "$m" ]; then
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -f "$f" ] || continue
            m=$(awk -v s="$SUITE" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(http|https|file):/) { if ($(i+1) == s) { print $i; exit } } }' "$f")
            [ -n "$m" ] && break
        done
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

if [ "$FRESH" = 1 ]; then rm -f "$CACHE_TAR"; fi
if [ ! -s "$CACHE_TAR" ]; then
    [ "$(id -u)" = 0 ] || die "debootstrap needs root"
    need_pkg debootstrap debootstrap
    MIRROR=$(find_mirror)
    mkdir -p "$CACHE_DIR"
    ROOT=$(mktemp -d /tmp/lambdad-rootfs.XXXXXX)
    cleanup() {
        # debootstrap may leave proc/sys mounted on failure
        for m in proc sys dev/pts dev; do umount -l "$ROOT/$m" 2>/dev/null || true; done
        rm -rf --one-file-system "$ROOT"
    }
    trap cleanup EXIT
    say "debootstrap --variant=minbase $SUITE from $MIRROR (a few minutes)"
    t0=$(date +%s)
    if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" \
        >"$CACHE_DIR/debootstrap.log" 2>&1; then
        tail -20 "$CACHE_DIR/debootstrap.log" >&2
        die "debootstrap failed (log: $CACHE_DIR/debootstrap.log)"
    fi
    say "debootstrap done in $(($(date +%s) - t0)) s"
    for m in proc sys dev/pts dev; do umount -l "$ROOT/$m" 2>/dev/null || true; done
    # Strip what a test image never needs.
    rm -rf "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
        "$ROOT"/usr/share/locale/* "$ROOT"/usr/share/lintian "$ROOT"/usr/share/linda \
        "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb \
        "$ROOT"/var/cache/debconf/*-old "$ROOT"/var/log/* "$ROOT"/debootstrap 2>/dev/null || true
    # The Lambda filesystem layout (§5.2): mount points and the writable /tmp.
    mkdir -p "$ROOT/var/task" "$ROOT/var/runtime" "$ROOT/opt"
    chmod 1777 "$ROOT/tmp"
    : >"$ROOT/etc/resolv.conf"
    echo lambdad-test >"$ROOT/etc/hostname"
    tar -C "$ROOT" --numeric-owner -czf "$CACHE_TAR.tmp" . || die "tar of rootfs failed"
    mv "$CACHE_TAR.tmp" "$CACHE_TAR"
    say "cached rootfs $CACHE_TAR ($(du -h "$CACHE_TAR" | cut -f1))"
fi

# --- import through the Engine API ----------------------------------------
REPO="${IMAGE%:*}"
TAG="${IMAGE##*:}"
[ "$REPO" != "$IMAGE" ] || TAG=latest
CHANGES=(
    "ENV PATH=/var/lang/bin:/usr/local/bin:/usr/bin:/bin:/opt/bin"
    "ENV LANG=C.UTF-8"
    "ENV LAMBDA_TASK_ROOT=/var/task"
    "ENV LAMBDA_RUNTIME_DIR=/var/runtime"
    "WORKDIR /var/task"
    'CMD ["/bin/sh"]'
    "LABEL org.lambdad.test-image=1"
)
image_id() { api --max-time 10 "$BASE/images/$(urlenc "$1")/json" 2>/dev/null | grep -o '"Id":"[^"]*"' | head -1 | cut -d'"' -f4; }
OLD_ID=$(image_id "$IMAGE" || true)
Q="fromSrc=-&repo=$(urlenc "$REPO")&tag=$(urlenc "$TAG")"
for c in "${CHANGES[@]}"; do Q="$Q&changes=$(urlenc "$c")"; done
say "importing $CACHE_TAR as $IMAGE"
out=$(api --max-time 600 -X POST -H 'Content-Type: application/x-tar' -T "$CACHE_TAR" "$BASE/images/create?$Q") ||
    die "image import failed: $out"
if printf '%s' "$out" | grep -q '"error"'; then die "image import failed: $out"; fi
image_exists "$IMAGE" || die "image $IMAGE missing after import: $out"
NEW_ID=$(image_id "$IMAGE" || true)
if [ -n "$OLD_ID" ] && [ "$OLD_ID" != "$NEW_ID" ]; then
    # The rebuilt image replaced the tag: drop the old one unless in use.
    if api --max-time 60 -o /dev/null -X DELETE "$BASE/images/$OLD_ID" 2>/dev/null; then
        say "removed the previous image ${OLD_ID:7:12}"
    else
        say "previous image ${OLD_ID:7:12} kept (in use)"
    fi
fi

size=$(api --max-time 10 "$BASE/images/$(urlenc "$IMAGE")/json" | grep -o '"Size":[0-9]*' | head -1 | cut -d: -f2)
size=$(( ${size:-0} / 1048576 ))
say "built $IMAGE (${size} MB)"
say "map runtimes onto it with: --lambda-image python3.12=$IMAGE --lambda-image nodejs20.x=$IMAGE"
finish
