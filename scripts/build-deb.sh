#!/usr/bin/env bash
# Build the Debian package: dist/gossipha_<version>_<arch>.deb (debian/ says what is in it).
# Installs its build dependencies first when they are missing (needs root then), builds from
# a copy of the sources in a temporary directory (the checkout is left as it was, and nothing
# outside the listed sources can reach the package), and reads PyPI for the Python libraries
# the package carries. Install the result with: apt install ./dist/gossipha_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DEPENDS=(debhelper dpkg-dev python3 python3-venv)
# What the package is built from; tests/, bench/, fuzz/ and scripts/ are not among them.
SOURCES=(debian gossipha docs deploy pyproject.toml MANIFEST.in README.md COPYING)

missing=()
for package in "${BUILD_DEPENDS[@]}"; do
    dpkg-query -W -f '${db:Status-Status}' "$package" 2>/dev/null | grep -qx installed ||
        missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "build-deb: needs root to install: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

version=$(dpkg-parsechangelog -S Version)
python_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)
if [ "$version" != "$python_version" ]; then
    echo "build-deb: debian/changelog says $version, pyproject.toml $python_version" >&2
    exit 1
fi
arch=$(dpkg --print-architecture)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/gossipha-$version"
cp -a "${SOURCES[@]}" "$work/gossipha-$version/"
# Leftovers of a run from the checkout are not sources.
find "$work/gossipha-$version" -name __pycache__ -prune -exec rm -rf {} +
(cd "$work/gossipha-$version" && dpkg-buildpackage -b -us -uc)

mkdir -p dist
deb="dist/gossipha_${version}_${arch}.deb"
mv "$work/gossipha_${version}_${arch}.deb" "$deb"
echo "build-deb: wrote $deb"
