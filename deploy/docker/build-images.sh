#!/usr/bin/env bash
# Builds AegisLink's container images with no registry and no network:
#
#   deploy/docker/build-images.sh [BIN_DIR] [TAG]
#
# BIN_DIR holds aegis-dir, aegis-node and aegis (default: target/release;
# build them first with `cargo build --release --bin aegis-dir --bin
# aegis-node --bin aegis`). TAG defaults to `local`.
#
# The base image, aegislink/base:TAG, is made here rather than pulled: the
# programs' shared libraries, as `ldd` finds them on this machine (Debian's
# libc6, libgcc-s1 and libstdc++6 packages), plus the dynamic loader, a
# passwd and group file naming the unprivileged user `aegis` (uid and gid
# 10001), /tmp and the data folder /var/lib/aegislink owned by that user.
# No shell, no package manager. `docker import` turns that tree into an
# image; each program's Dockerfile beside this script adds its binary
# (debug information stripped) on top: aegislink/aegis-dir:TAG,
# aegislink/aegis-node:TAG and aegislink/aegis:TAG.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
bins="${1:-target/release}"
tag="${2:-local}"
programs=(aegis-dir aegis-node aegis)
uid=10001

for tool in docker ldd tar; do
    command -v "$tool" >/dev/null || { echo "build-images: $tool is needed" >&2; exit 1; }
done
for p in "${programs[@]}"; do
    [ -x "$bins/$p" ] || { echo "build-images: no $bins/$p; build the programs first" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/etc" "$root/tmp" "$root/usr/local/bin" "$root/var/lib/aegislink"
chmod 1777 "$root/tmp"
chmod 0700 "$root/var/lib/aegislink"

# Every library the programs load, at the path the loader looks for it.
for p in "${programs[@]}"; do
    if ldd "$bins/$p" | grep -q 'not found'; then
        echo "build-images: $p needs a library this machine lacks:" >&2
        ldd "$bins/$p" >&2
        exit 1
    fi
    ldd "$bins/$p" | grep -o '/[^ ]*' | sort -u | while read -r lib; do
        cp --parents -L "$lib" "$root/"
    done
done

cat > "$root/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/usr/sbin/nologin
aegis:x:$uid:$uid:AegisLink:/var/lib/aegislink:/usr/sbin/nologin
PASSWD
cat > "$root/etc/group" <<GROUP
root:x:0:
aegis:x:$uid:
GROUP
echo 'hosts: files dns' > "$root/etc/nsswitch.conf"

# Everything owned by root but the data folder; no root needed to build.
tar --owner=0 --group=0 --numeric-owner --exclude=./var/lib/aegislink \
    -C "$root" -cf "$work/base.tar" .
tar --owner="$uid" --group="$uid" --numeric-owner --no-recursion \
    -C "$root" -rf "$work/base.tar" ./var/lib/aegislink
# Images this build replaces are removed once they are untagged.
old_images=()
for image in base "${programs[@]}"; do
    old_images+=("$(docker image inspect --format '{{.Id}}' "aegislink/$image:$tag" 2>/dev/null || true)")
done

docker import \
    --change "ENV PATH=/usr/local/bin" \
    --change "USER $uid:$uid" \
    --change "WORKDIR /var/lib/aegislink" \
    --message "AegisLink base: the programs' libraries from this machine's Debian packages" \
    "$work/base.tar" "aegislink/base:$tag" >/dev/null
echo "aegislink/base:$tag"

version="$("$bins/aegis-node" --version | awk '{print $2}')"
for p in "${programs[@]}"; do
    context="$work/$p"
    mkdir -p "$context"
    if command -v strip >/dev/null; then
        strip --strip-debug -o "$context/$p" "$bins/$p"
    else
        cp "$bins/$p" "$context/$p"
    fi
    docker build --quiet \
        --build-arg "BASE=aegislink/base:$tag" \
        --build-arg "VERSION=$version" \
        --tag "aegislink/$p:$tag" \
        --file "$here/$p.Dockerfile" \
        "$context" >/dev/null 2>"$work/build.log" || { cat "$work/build.log" >&2; exit 1; }
    echo "aegislink/$p:$tag"
done

for id in "${old_images[@]}"; do
    if [ -n "$id" ] && [ -z "$(docker image inspect --format '{{join .RepoTags ","}}' "$id" 2>/dev/null)" ]; then
        docker image rm "$id" >/dev/null 2>&1 || true
    fi
done
