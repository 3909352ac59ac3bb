#!/bin/sh
# deps.sh — installs the Debian packages KoruDelta needs to build, test and benchmark,
# skipping those already present. Called by the Makefile; safe to run repeatedly.
# Usage: scripts/deps.sh [build|test|bench|fuzz|all]   (default: all)
set -e
PKGS_BUILD="gcc libc6-dev binutils make pkg-config libsodium-dev librust-blake3-dev libmicrohttpd-dev libcurl4-openssl-dev"
PKGS_TEST="libjansson-dev valgrind python3 curl"
PKGS_BENCH="libsqlite3-dev wrk nginx-light libhnswlib-dev g++"
# `make fuzz`: clang, and libFuzzer with the sanitizer runtimes (libclang-rt-14-dev on Debian 12).
PKGS_FUZZ="clang clang-14 libclang-rt-14-dev"
case "${1:-all}" in
  build) PKGS="$PKGS_BUILD" ;;
  test)  PKGS="$PKGS_BUILD $PKGS_TEST" ;;
  bench) PKGS="$PKGS_BUILD $PKGS_BENCH" ;;
  fuzz)  PKGS="$PKGS_BUILD $PKGS_FUZZ" ;;
  *)     PKGS="$PKGS_BUILD $PKGS_TEST $PKGS_BENCH" ;;
esac
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2
