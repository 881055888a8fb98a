#!/usr/bin/env bash
# Installs what building and testing hashkv needs, if missing (Debian 12,
# as root). Sourced by scripts/demo and scripts/test.
hkv_install_deps() {
  local pkgs=(build-essential cmake pkg-config check libsqlite3-dev sqlite3
              libxxhash-dev liblmdb-dev python3 clang
              python3-venv python3-pip python3-setuptools python3-wheel
              python3-pytest)
  local need=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}
