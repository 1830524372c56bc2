#!/usr/bin/env bash
# A pinned, static libcrypto for the C core: OpenSSL 3.5.6, whose AES-GCM has the VAES /
# AVX-512 path (several times the speed of Debian 12's OpenSSL 3.0 on CPUs that have it).
#
#   bash build_tools/build_openssl.sh [PREFIX]
#
# PREFIX (default: $MESHAGENT_OPENSSL_PREFIX, else build/openssl in the project) gets
# include/openssl/*.h and lib/libcrypto.a, built position-independent so the cffi extension
# can link it in (meshagent/_build_core.py reads MESHAGENT_OPENSSL_PREFIX).
#
# The source tarball is downloaded once into $MESHAGENT_OPENSSL_CACHE (default
# ~/.cache/meshagent) and its SHA-256 checked before every use; a mismatch stops the build.
# Idempotent: with PREFIX already holding this version's build with these options, it does
# nothing; an older build of this script there is replaced (the pin lives in this file
# only), anything else there is left alone and stops the build. The build goes to a scratch
# directory and PREFIX appears only when it is complete.
set -euo pipefail

OPENSSL_VERSION=3.5.6
OPENSSL_SHA256=deae7c80cba99c4b4f940ecadb3c3338b13cb77418409238e57d7f31f2a3b736
OPENSSL_URL="http://deb.debian.org/debian/pool/main/o/openssl/openssl_${OPENSSL_VERSION}.orig.tar.gz"
# Only libcrypto is used: no libssl, apps, tests, docs or loadable modules (providers are
# built in). -fPIC: it is linked into a shared object (the cffi extension).
CONFIGURE_OPTIONS=(no-shared no-module no-tests no-apps no-docs no-ui-console -fPIC)

root=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-${MESHAGENT_OPENSSL_PREFIX:-$root/build/openssl}}
case $prefix in /*) ;; *) prefix=$PWD/$prefix ;; esac
cache=${MESHAGENT_OPENSSL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshagent}
tarball=$cache/openssl-$OPENSSL_VERSION.tar.gz
stamp=$prefix/.meshagent-openssl
build_id="$OPENSSL_VERSION $OPENSSL_SHA256 ${CONFIGURE_OPTIONS[*]}"

say() { echo "build_openssl: $*" >&2; }
fail() { say "error: $*"; exit 1; }

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$build_id" ] \
    && [ -f "$prefix/lib/libcrypto.a" ]; then
  say "OpenSSL $OPENSSL_VERSION already built in $prefix"
  exit 0
fi

if [ -e "$prefix" ] && [ ! -f "$stamp" ] && [ -n "$(ls -A "$prefix")" ]; then
  fail "$prefix exists and is not a build of this script: choose another PREFIX"
fi

sha256_of() {
  if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
  else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

mkdir -p "$cache"
if [ ! -f "$tarball" ]; then
  say "downloading $OPENSSL_URL"
  curl -fsSL --retry 3 -o "$tarball.part.$$" "$OPENSSL_URL" \
    || { rm -f "$tarball.part.$$"; fail "download of $OPENSSL_URL failed"; }
  mv "$tarball.part.$$" "$tarball"
fi
actual=$(sha256_of "$tarball")
if [ "$actual" != "$OPENSSL_SHA256" ]; then
  fail "$tarball has SHA-256 $actual, expected $OPENSSL_SHA256 (OpenSSL $OPENSSL_VERSION);" \
       "refusing to build from it. Delete it to download again."
fi

jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/meshagent-openssl.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
say "building OpenSSL $OPENSSL_VERSION in $scratch ($jobs jobs)"
start=$(date +%s)
tar -xzf "$tarball" -C "$scratch"
src=$(find "$scratch" -mindepth 1 -maxdepth 1 -type d | head -1)
[ -f "$src/Configure" ] || fail "$tarball holds no OpenSSL source tree"

# OPENSSLDIR (where a config file would be looked for) is left inside PREFIX: the core never
# reads openssl.cnf, and pointing it at a system directory could load a configuration
# written for the system's OpenSSL.
(
  cd "$src"
  ./Configure "${CONFIGURE_OPTIONS[@]}" \
    --prefix="$prefix" --openssldir="$prefix/ssl" --libdir=lib >"$scratch/configure.log" 2>&1 \
    || { tail -30 "$scratch/configure.log" >&2; exit 1; }
  make -j"$jobs" build_generated >"$scratch/make.log" 2>&1 \
    && make -j"$jobs" libcrypto.a >>"$scratch/make.log" 2>&1 \
    || { tail -30 "$scratch/make.log" >&2; exit 1; }
) || fail "OpenSSL $OPENSSL_VERSION did not build (log above)"

# Install by hand what linking needs: install_dev would also want libssl.
staged=$scratch/prefix
mkdir -p "$staged/include/openssl" "$staged/lib"
cp "$src"/include/openssl/*.h "$staged/include/openssl/"
cp "$src/libcrypto.a" "$staged/lib/"
echo "$build_id" >"$staged/.meshagent-openssl"
rm -rf "$prefix"
mkdir -p "$(dirname "$prefix")"
mv "$staged" "$prefix"
say "OpenSSL $OPENSSL_VERSION installed in $prefix in $(( $(date +%s) - start )) s"
