#!/usr/bin/env bash
# Debian packages for the deploy suite: buildah builds the operator image without a daemon, skopeo and
# umoci inspect and unpack it; qemu-user and the other architecture's glibc run the Lambda bootstraps
# built for it (arm64 on an x86_64 host) under the Runtime API emulator.
set -euo pipefail
case "$(dpkg --print-architecture)" in
  amd64) foreign=arm64 ;;
  arm64) foreign=amd64 ;;
  *) echo "install-deps.sh: no Lambda architecture is native here; both need qemu-user" >&2; exit 1 ;;
esac
missing=()
for package in buildah skopeo umoci qemu-user "libc6-$foreign-cross" "libgcc-s1-$foreign-cross"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Another apt run (a second suite, a person) may hold the lock for a while: wait for it.
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
