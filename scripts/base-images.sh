#!/usr/bin/env bash
# Makes the base images the Dockerfiles name, from Debian's packages, when
# they are missing (no image registry answers here):
#   debian:bookworm-slim       debootstrap --variant=minbase, docs stripped
#   python:3.11-slim-bookworm  Debian's Python 3.11 (scripts/images/python.Containerfile)
#   rust:1.95-bookworm         the host's rustup toolchain (scripts/images/rust.Containerfile)
# Each carries the host's extra CA certificates, so builds trust what this
# machine's network trusts. Usage: scripts/base-images.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if ! command -v podman >/dev/null || ! command -v debootstrap >/dev/null || ! command -v runc >/dev/null; then
  step "installing podman, runc and debootstrap (Debian's packages)"
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq podman runc debootstrap >/dev/null
fi

have_image() { podman image exists "$1"; }

# The Debian mirror apt uses here, so debootstrap fetches from the same place.
debian_mirror() {
  sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1 | grep . ||
    awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list
}

make_debian() {
  local rootfs
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' RETURN
  step "debootstrap bookworm (minbase) from $(debian_mirror)"
  debootstrap --variant=minbase bookworm "$rootfs" "$(debian_mirror)" >/dev/null
  # What the official slim image leaves out, kept out of later installs too.
  # As in the official image, apt keeps no package files or caches, so an
  # install's layer holds only what it installed.
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
  printf 'Acquire::Languages "none";\n' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
CFG
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$rootfs"/usr/share/{man,info,locale}/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/*
  mkdir -p "$rootfs/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
  printf 'cafile=/etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/npmrc"
  tar -C "$rootfs" --numeric-owner -c . |
    pod import --quiet --change 'CMD ["bash"]' --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
      - docker.io/library/debian:bookworm-slim >/dev/null
}

make_python() {
  step "python:3.11-slim-bookworm from Debian's python3"
  pod build --pull=never --network host -t docker.io/library/python:3.11-slim-bookworm \
    -f "$ROOT/scripts/images/python.Containerfile" "$ROOT/scripts/images" >/dev/null
  pod tag docker.io/library/python:3.11-slim-bookworm docker.io/library/python:3.11-slim
}

make_rust() {
  local context toolchain version
  version=$(rustc --version | awk '{ print $2 }')
  toolchain=$(rustc --print sysroot)
  context=$(mktemp -d)
  trap 'rm -rf "$context"' RETURN
  step "rust:${version%.*}-bookworm from the host's toolchain $toolchain"
  mkdir -p "$context/rustup/toolchains" "$context/cargo/bin"
  # The toolchain without its offline docs (rust-docs: most of its size).
  cp -a "$toolchain" "$context/rustup/toolchains/$version-x86_64-unknown-linux-gnu"
  rm -rf "$context/rustup/toolchains/$version-x86_64-unknown-linux-gnu/share/doc"
  printf 'version = "12"\ndefault_toolchain = "%s-x86_64-unknown-linux-gnu"\nprofile = "minimal"\nauto_self_update = "disable"\n' \
    "$version" >"$context/rustup/settings.toml"
  for tool in rustup cargo rustc rustdoc cargo-clippy clippy-driver rustfmt cargo-fmt; do
    cp "$(command -v rustup)" "$context/cargo/bin/$tool"
  done
  cp "$ROOT/scripts/images/rust.Containerfile" "$context/Containerfile"
  pod build --pull=never --network host -t "docker.io/library/rust:${version%.*}-bookworm" "$context" >/dev/null
}

have_image docker.io/library/debian:bookworm-slim || make_debian
have_image docker.io/library/python:3.11-slim-bookworm || make_python
have_image "docker.io/library/rust:$(rustc --version | awk '{ split($2, v, "."); print v[1] "." v[2] }')-bookworm" || make_rust
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '/(debian|python|rust):'
