#!/usr/bin/env bash
# Run every test: unit tests, integration tests (real server, SQLite and PostgreSQL, webrtc-rs
# peers) and the browser test (real Chromium). Installs what it needs on a fresh Debian machine.
# Everything runs inside a network namespace that holds only `lo`, so no test traffic can
# reach another interface. Needs root (for apt-get and unshare).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v c++ >/dev/null || missing+=(g++)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v ip >/dev/null || missing+=(iproute2)
command -v unshare >/dev/null || missing+=(util-linux)
command -v npm >/dev/null || missing+=(npm)
command -v pg_isready >/dev/null || missing+=(postgresql-client)
command -v chattr >/dev/null || missing+=(e2fsprogs)
# The admin page's browser test lays down a finished recording session's rows with it.
command -v sqlite3 >/dev/null || missing+=(sqlite3)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# PostgreSQL is part of this kind of machine; start it if it stopped.
if ! pg_isready -q -h /var/run/postgresql; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi

(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/browser && npx --no-install tsc -p ../../web-client/tsconfig.json)

# Build with the registry reachable; the tests then run offline in the namespace.
cargo build --workspace --tests --bins

unshare --net sh -c '
  set -e
  ip link set lo up
  cargo test --workspace --offline
  ROUNDTABLE_BIN="$PWD/target/debug/roundtable" node --test tests/browser/
'
