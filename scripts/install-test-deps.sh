#!/usr/bin/env bash
# Installs every real server and client the integration tests use, on this machine only.
#
# Idempotent: each step checks first and does nothing when its piece is already there, so a
# second run takes about a second. Everything that is not an apt package lives under
# $SLUICE_CACHE (default $HOME/.cache/sluice), where the `sluice-testkit` crate looks for it:
#
#   $SLUICE_CACHE/venv/bin/{moto_server,python}   moto[server] (S3) and aiosmtpd (SMTP)
#   $SLUICE_CACHE/node/node_modules/playwright-core  drives Debian's /usr/bin/chromium
#   $SLUICE_CACHE/syslog-ng/usr/sbin/syslog-ng     unpacked, not installed (it conflicts with rsyslog)
#   $SLUICE_CACHE/tansu/bin/tansu                  Kafka-compatible broker (cold build ~8 min)
#   $SLUICE_CACHE/env                              shell file exporting the paths above
#
# apt packages: pure-ftpd, rsyslog, util-linux (logger), openssl, curl, chromium.
# Nothing here downloads a browser or a prebuilt binary: only Debian, PyPI, npm and crates.io.
set -euo pipefail

CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"
MOTO_VERSION=5.2.5
AIOSMTPD_VERSION=1.4.6
PLAYWRIGHT_CORE_VERSION=1.65.1
TANSU_VERSION=0.6.0

mkdir -p "$CACHE"
log() { printf '[install-test-deps] %s\n' "$*"; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi

# ---------------------------------------------------------------- apt
# package name -> a file that proves it is installed
declare -A APT_PROBE=(
  [pure-ftpd]=/usr/sbin/pure-ftpd
  [rsyslog]=/usr/sbin/rsyslogd
  [util-linux]=/usr/bin/logger
  [openssl]=/usr/bin/openssl
  [curl]=/usr/bin/curl
  [chromium]=/usr/bin/chromium
)
missing=()
for pkg in "${!APT_PROBE[@]}"; do
  [ -e "${APT_PROBE[$pkg]}" ] || missing+=("$pkg")
done
# pure-pw ships with pure-ftpd, but check it separately in case of a partial install
[ -e /usr/bin/pure-pw ] || [[ " ${missing[*]-} " == *" pure-ftpd "* ]] || missing+=(pure-ftpd)

apt_updated=0
apt_update_once() {
  if [ "$apt_updated" -eq 0 ]; then
    log "apt-get update"
    "${SUDO[@]}" apt-get update -qq
    apt_updated=1
  fi
}

if [ "${#missing[@]}" -gt 0 ]; then
  apt_update_once
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
# The Debian packages start daemons on install on some images (no systemd here usually, but
# an init script may run): the tests start their own instances, so the system ones are not
# needed. Leave them alone if they run; the tests never use the default ports.

# ---------------------------------------------------------------- syslog-ng (unpacked)
# syslog-ng-core conflicts with rsyslog as a package, so it is unpacked with `dpkg -x` into
# $CACHE/syslog-ng. Its dependencies libc6, libcap2, libglib2.0-0, libjson-c5, libssl3 and
# libsystemd0 are part of the base image (installed with apt below if missing); libivykis0,
# libnet1, libpcre3 and libwrap0 are not, and are unpacked next to it. The binary then runs
# with LD_LIBRARY_PATH=$SNG/usr/lib/syslog-ng:$SNG/usr/lib/x86_64-linux-gnu:$SNG/lib/x86_64-linux-gnu
# and --module-path=$SNG/usr/lib/syslog-ng/3.38.
SNG="$CACHE/syslog-ng"
SNG_LD="$SNG/usr/lib/syslog-ng:$SNG/usr/lib/x86_64-linux-gnu:$SNG/lib/x86_64-linux-gnu"
sng_ok() {
  [ -x "$SNG/usr/sbin/syslog-ng" ] &&
    LD_LIBRARY_PATH="$SNG_LD" "$SNG/usr/sbin/syslog-ng" --version >/dev/null 2>&1
}
if ! sng_ok; then
  base_libs=()
  for pkg in libcap2 libglib2.0-0 libjson-c5 libssl3 libsystemd0; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || base_libs+=("$pkg")
  done
  if [ "${#base_libs[@]}" -gt 0 ]; then
    apt_update_once
    log "apt-get install ${base_libs[*]} (libraries syslog-ng needs)"
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
      "${base_libs[@]}" >/dev/null
  fi
  log "unpacking syslog-ng-core libivykis0 libnet1 libpcre3 libwrap0 into $SNG"
  dl="$(mktemp -d)"
  chmod 755 "$dl" # apt's _apt user must be able to write there, or apt warns
  trap 'rm -rf "$dl"' EXIT
  if ! (cd "$dl" && apt-get download -qq syslog-ng-core libivykis0 libnet1 libpcre3 libwrap0 2>/dev/null); then
    apt_update_once
    (cd "$dl" && apt-get download -qq syslog-ng-core libivykis0 libnet1 libpcre3 libwrap0)
  fi
  rm -rf "$SNG.tmp"
  mkdir -p "$SNG.tmp"
  for deb in "$dl"/*.deb; do dpkg -x "$deb" "$SNG.tmp"; done
  rm -rf "$SNG"
  mv "$SNG.tmp" "$SNG"
  rm -rf "$dl"
  trap - EXIT
  if ! sng_ok; then
    echo "syslog-ng unpacked into $SNG does not run:" >&2
    LD_LIBRARY_PATH="$SNG_LD" "$SNG/usr/sbin/syslog-ng" --version >&2 || true
    exit 1
  fi
  log "syslog-ng: $(LD_LIBRARY_PATH="$SNG_LD" "$SNG/usr/sbin/syslog-ng" --version | head -1)"
fi

# ---------------------------------------------------------------- Python venv
VENV="$CACHE/venv"
venv_ok() {
  [ -x "$VENV/bin/moto_server" ] && [ -x "$VENV/bin/python" ] &&
    "$VENV/bin/python" - "$MOTO_VERSION" "$AIOSMTPD_VERSION" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if (version("moto"), version("aiosmtpd")) == (sys.argv[1], sys.argv[2]) else 1)
EOF
}
if ! venv_ok; then
  log "python venv $VENV: moto[server]==$MOTO_VERSION aiosmtpd==$AIOSMTPD_VERSION"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "moto[server]==$MOTO_VERSION" "aiosmtpd==$AIOSMTPD_VERSION"
  venv_ok || { echo "venv $VENV is not usable after pip install" >&2; exit 1; }
fi

# ---------------------------------------------------------------- npm: playwright-core
NODE_DIR="$CACHE/node"
pw_ok() {
  [ -f "$NODE_DIR/node_modules/playwright-core/package.json" ] &&
    node -e 'process.exit(require(process.argv[1]).version === process.argv[2] ? 0 : 1)' \
      "$NODE_DIR/node_modules/playwright-core/package.json" "$PLAYWRIGHT_CORE_VERSION" 2>/dev/null
}
if ! pw_ok; then
  log "npm playwright-core@$PLAYWRIGHT_CORE_VERSION into $NODE_DIR (no browser download; use /usr/bin/chromium)"
  mkdir -p "$NODE_DIR"
  [ -f "$NODE_DIR/package.json" ] || echo '{"name":"sluice-test-node","private":true}' >"$NODE_DIR/package.json"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$NODE_DIR" --no-audit --no-fund \
    --loglevel=error "playwright-core@$PLAYWRIGHT_CORE_VERSION" >/dev/null
  pw_ok || { echo "playwright-core did not install into $NODE_DIR" >&2; exit 1; }
fi

# ---------------------------------------------------------------- tansu (Kafka broker)
TANSU="$CACHE/tansu/bin/tansu"
if [ ! -x "$TANSU" ] && [ "${SLUICE_SKIP_TANSU:-0}" != 1 ]; then
  # two runs at once (two checkouts) must not build it twice into the same directory
  exec 9>"$CACHE/tansu.lock"
  flock 9
fi
if [ ! -x "$TANSU" ] && [ "${SLUICE_SKIP_TANSU:-0}" != 1 ]; then
  log "cargo install tansu $TANSU_VERSION (cold: about 8 minutes, cached in $CACHE/tansu)"
  CARGO_TARGET_DIR="$CACHE/tansu-target" nice -n 19 \
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore \
    --root "$CACHE/tansu" --quiet
  [ -x "$TANSU" ] || { echo "tansu did not build" >&2; exit 1; }
  # the intermediate build directory is large and not needed once the binary exists
  rm -rf "$CACHE/tansu-target"
fi
exec 9>&- || true

# ---------------------------------------------------------------- env file
ENV_FILE="$CACHE/env"
new_env="$(cat <<EOF
# written by scripts/install-test-deps.sh; sluice-testkit finds the same paths by itself
export SLUICE_CACHE="$CACHE"
export SLUICE_VENV="$VENV"
export SLUICE_MOTO_SERVER="$VENV/bin/moto_server"
export SLUICE_PYTHON="$VENV/bin/python"
export SLUICE_TANSU="$TANSU"
export SLUICE_SYSLOG_NG="$SNG/usr/sbin/syslog-ng"
export SLUICE_SYSLOG_NG_LD_LIBRARY_PATH="$SNG_LD"
export SLUICE_SYSLOG_NG_MODULE_PATH="$SNG/usr/lib/syslog-ng/3.38"
export SLUICE_NODE_PATH="$NODE_DIR/node_modules"
export SLUICE_CHROMIUM=/usr/bin/chromium
EOF
)"
if [ ! -f "$ENV_FILE" ] || [ "$(cat "$ENV_FILE")" != "$new_env" ]; then
  printf '%s\n' "$new_env" >"$ENV_FILE"
  log "wrote $ENV_FILE"
fi
log "all test dependencies present"
