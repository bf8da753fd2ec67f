#!/usr/bin/env bash
# Package the bundle that build.sh made (dist/Assistant) as a .deb: dist/assistant_VERSION_ARCH.deb.
#
# Why a .deb and not an AppImage: double-clicked, it opens in the desktop's software centre
# (GNOME Software, Ubuntu's App Center, KDE Discover), which installs it with apt, and apt brings
# the system libraries Qt needs (libxcb-cursor0 and the other xcb libraries a bare desktop lacks),
# listed in Depends. An AppImage must carry or assume those, needs FUSE 2 (absent from Ubuntu
# 22.04 and later) and the executable bit (absent on a download), and its tools are downloads
# of their own, not packages.
#
# Depends is read from the bundle: every shared library its binaries link against that the
# bundle does not carry, and the Debian package that provides it here (dpkg -S), as
# dpkg-shlibdeps does. A library this machine lacks is named by assistant/ui/system_libraries.py's
# table, or the build stops.
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=$(realpath "${1:-dist/Assistant}")
[ -x "$bundle/Assistant" ] || { echo "no bundle at $bundle (run installers/build.sh)" >&2; exit 1; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
arch=$(dpkg --print-architecture)
stage=$(realpath -m build/deb)
deb=dist/assistant_${version}_${arch}.deb

rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/opt" "$stage/usr/bin" "$stage/usr/share/applications" \
  "$stage/usr/share/icons/hicolor/scalable/apps" "$stage/usr/share/doc/assistant"
cp -a "$bundle" "$stage/opt/assistant"
chmod -R u+rwX,go+rX,go-w "$stage/opt/assistant"  # whatever the build's umask: all may run it
ln -s /opt/assistant/Assistant "$stage/usr/bin/assistant"
install -m644 resources/assistant.desktop "$stage/usr/share/applications/assistant.desktop"
install -m644 resources/icons/assistant.svg \
  "$stage/usr/share/icons/hicolor/scalable/apps/assistant.svg"
cat > "$stage/usr/share/doc/assistant/copyright" <<'EOF'
Assistant: MIT License.
The starter model, SmolLM2-135M-Instruct (opt/assistant/_internal/starter): Apache License 2.0,
by Hugging Face (HuggingFaceTB/SmolLM2-135M-Instruct).
The built-in embedding model, all-MiniLM-L6-v2 (opt/assistant/_internal/starter): Apache License
2.0, by sentence-transformers (sentence-transformers/all-MiniLM-L6-v2).
llama.cpp (opt/assistant/_internal/llama_cpp/lib): MIT License. Qt (PySide6): LGPLv3.
EOF

# What the bundle links against and does not carry.
libs=$(mktemp)
internal="$stage/opt/assistant/_internal"
find "$stage/opt/assistant" -type f \( -name '*.so*' -o -name Assistant \) -print0 |
  while IFS= read -r -d '' f; do
    [ "$(head -c4 "$f" | tr -d '\0')" = $'\x7fELF' ] || continue
    LD_LIBRARY_PATH="$internal" ldd "$f" 2>/dev/null || true
  done |
  sed -n 's/^\s*\(\S*\) => \(.*\) (0x.*)$/\1 \2/p; s/^\s*\(\S*\) => not found$/\1 -/p' |
  sort -u > "$libs"
unknown=$(mktemp)
packages=$(
  while read -r soname path; do
    if [ "$path" = - ]; then
      python3 - "$soname" <<'PY' || echo "$soname" >> "$unknown"
import sys
sys.path.insert(0, ".")
from assistant.ui.system_libraries import PACKAGES
name = sys.argv[1]
if name not in PACKAGES:
    sys.exit(f"{name}: needed by the bundle, absent here, and in no table")
print(PACKAGES[name][0])
PY
      continue
    fi
    case "$(realpath "$path")" in "$stage"/*) continue ;; esac  # carried by the bundle
    owner=$( (dpkg -S "$(realpath "$path")" 2>/dev/null || dpkg -S "$path" 2>/dev/null || true) |
      grep -v '^diversion by' | sed -n '1s/:.*//p')
    [ -n "$owner" ] && echo "$owner" || echo "$soname ($path)" >> "$unknown"
  done < "$libs" | sort -u
)
rm -f "$libs"
if [ -s "$unknown" ]; then
  echo "No Debian package is known for these libraries the bundle needs (add them to" >&2
  echo "assistant/ui/system_libraries.py's table, or install them here):" >&2
  cat "$unknown" >&2
  rm -f "$unknown"
  exit 1
fi
rm -f "$unknown"
[ -n "$packages" ] || { echo "found no dependencies: ldd failed?" >&2; exit 1; }
# The C library as new as the one it was built against (an older one lacks symbols it uses).
glibc=$(ldd --version | sed -n '1s/.* //p')
# fontconfig's own configuration: the bundle carries the library, not /etc/fonts (without it
# fontconfig complains at every start on a bare system).
packages=$(printf '%s\nfontconfig-config\n' "$packages" | sort -u)
depends=$(echo "$packages" | sed "s/^libc6$/libc6 (>= $glibc)/" | paste -sd, | sed 's/,/, /g')

cat > "$stage/DEBIAN/control" <<EOF
Package: assistant
Version: $version
Architecture: $arch
Maintainer: Assistant <assistant@localhost>
Section: utils
Priority: optional
Depends: $depends
Recommends: fonts-dejavu-core
Installed-Size: $(du -sk "$stage" | cut -f1)
Homepage: https://localhost/assistant
Description: private chat with local large language models, offline
 A desktop app for chatting with language models on this computer. Conversations stay in a
 SQLite file here; nothing leaves the machine except the model downloads asked for. Ships
 llama.cpp (every CPU variant, chosen at run time) and a small starter model that answers with
 no network.
EOF
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb"
echo "Depends: $depends"
echo "Built $(realpath "$deb") ($(du -h "$deb" | cut -f1))"
