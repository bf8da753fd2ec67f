#!/usr/bin/env bash
# Source this: it sets VULKAN_CMAKE_ARGS, the CMake arguments that build llama.cpp's Vulkan
# backend with a shader compiler that has cooperative matrices and integer dot products.
#
# ggml's fast Vulkan paths (matrix cores through GL_KHR_cooperative_matrix and
# GL_NV_cooperative_matrix2, integer dot products for quantized weights) exist only when glslc
# compiles them. Debian 12's glslc (shaderc 2023.2, glslang 12) has neither, so a module built
# with it is several times slower on the GPUs that have those units. When the glslc on PATH
# lacks them and apt is here, this takes Debian 13's shaderc (2025.2, glslang 15.1) and Vulkan
# headers (1.4.309) with a private apt state (apt checks the archive's signatures), unpacks them
# under build/vulkan-toolchain, and runs that glslc with its own C library, so nothing on the
# system changes. Elsewhere, install the Vulkan SDK (https://vulkan.lunarg.com), which has a
# recent glslc, and set VULKAN_SDK.
#
# What this glslc still lacks (the pinned llama.cpp checks each): GL_EXT_bfloat16,
# GL_NV_cooperative_matrix_decode_vector, GL_EXT_float_e2m1, GL_EXT_float_e4m3.

_vk_test_shader() {
  # The extension test llama.cpp itself runs (ggml/src/ggml-vulkan/CMakeLists.txt).
  local glslc=$1 shader
  shader=$(mktemp --suffix=.comp)
  printf '#version 460\n#extension GL_KHR_cooperative_matrix : require\n#extension GL_EXT_integer_dot_product : require\nvoid main() {}\n' >"$shader"
  "$glslc" -o /dev/null -fshader-stage=compute --target-env=vulkan1.3 "$shader" >/dev/null 2>&1
  local rc=$?
  rm -f "$shader"
  return $rc
}

_vk_debian13_toolchain() {
  local dir=$1 state
  state=$dir/apt
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$dir/debs" "$dir/root"
  echo "deb http://deb.debian.org/debian trixie main" >"$state/sources.list"
  local apt=(apt-get -q -o Dir::Etc::SourceList="$state/sources.list"
    -o Dir::Etc::SourceParts=/nonexistent -o Dir::State="$state"
    -o Dir::Cache="$state/cache" -o APT::Sandbox::User=root)
  "${apt[@]}" update >/dev/null
  (cd "$dir/debs" && "${apt[@]}" download glslc libshaderc1 libc6 libstdc++6 libgcc-s1 \
    libvulkan-dev libvulkan1 spirv-headers >/dev/null)
  for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
  local lib=$dir/root/usr/lib/x86_64-linux-gnu
  cat >"$dir/glslc" <<EOF
#!/bin/sh
exec "$dir/root/usr/lib64/ld-linux-x86-64.so.2" --library-path "$lib" "$dir/root/usr/bin/glslc" "\$@"
EOF
  chmod +x "$dir/glslc"
}

vulkan_cmake_args() {
  local dir
  dir=$(pwd)/build/vulkan-toolchain
  VULKAN_CMAKE_ARGS=(-DGGML_VULKAN=ON)
  local system_glslc
  system_glslc=$(command -v glslc || true)
  if [ -n "${VULKAN_SDK:-}" ] || { [ -n "$system_glslc" ] && _vk_test_shader "$system_glslc"; }; then
    return 0 # the Vulkan SDK or a recent system glslc: CMake finds them itself
  fi
  if [ ! -x "$dir/glslc" ] || ! _vk_test_shader "$dir/glslc"; then
    if [ "$(uname -m)" != x86_64 ] || ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
      echo "No glslc with cooperative matrices here: install the Vulkan SDK and set VULKAN_SDK" >&2
      return 1
    fi
    echo "Fetching Debian 13's shaderc and Vulkan headers into $dir" >&2
    rm -rf "$dir"
    _vk_debian13_toolchain "$dir"
  fi
  local root=$dir/root/usr loader
  # Link against the system's Vulkan loader where there is one (Debian 13's needs its C library).
  loader=/usr/lib/x86_64-linux-gnu/libvulkan.so.1
  [ -e "$loader" ] || loader=$root/lib/x86_64-linux-gnu/libvulkan.so.1
  VULKAN_CMAKE_ARGS+=(-DVulkan_GLSLC_EXECUTABLE="$dir/glslc" -DVulkan_INCLUDE_DIR="$root/include"
    -DVulkan_LIBRARY="$loader" -DCMAKE_PREFIX_PATH="$root")
}
