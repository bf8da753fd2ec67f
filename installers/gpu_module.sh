#!/usr/bin/env bash
# Build one llama.cpp GPU module for the pinned llama-cpp-python, from the same sources, and put
# it where Assistant loads it into the installed llama.cpp (assistant/hardware/backends.py).
#
#   installers/gpu_module.sh vulkan|cuda [--into DIR]
#
# DIR defaults to the app's own folder for this llama-cpp-python version
# (~/.local/share/Assistant/gpu-modules/VERSION on Linux). A source install of the README gets
# its GPU this way without rebuilding llama-cpp-python; CI builds the Vulkan module for the
# tests that run on Mesa's lavapipe.
#
# Vulkan: CMake, a C++ compiler, and glslc with cooperative matrices (vulkan_toolchain.sh finds
#   or fetches one). About 6 minutes on two cores, most of it compiling shaders.
# CUDA: NVIDIA's CUDA toolkit (nvcc); optional, and only where the toolkit is installed.
#   Set CUDA_ARCHITECTURES (e.g. "86;89") to build for your card only, which is much faster.
set -euo pipefail
kind=${1:-}
shift || true
into=""
while [ $# -gt 0 ]; do
  case $1 in
    --into) into=$(realpath -m "$2"); shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
case $kind in vulkan | cuda) ;; *) echo "usage: $0 vulkan|cuda [--into DIR]" >&2; exit 2 ;; esac
cd "$(dirname "$0")/.."  # after --into was made absolute
python=${PYTHON:-python3.12}
version=$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml)

# The sources of the pinned llama-cpp-python (its sdist vendors llama.cpp), as build.sh gets them.
src=build/llama-src
if ! grep -qx "Version: $version" "$src/PKG-INFO" 2>/dev/null; then
  rm -rf "$src"
  mkdir -p build/sdist "$src"
  "$python" -m pip download --quiet --no-deps --no-binary :all: -d build/sdist \
    "llama-cpp-python==$version"
  tar -xzf build/sdist/llama_cpp_python-"$version".tar.gz -C "$src" --strip-components 1
fi

args=(-DGGML_CUDA=ON)
if [ "$kind" = vulkan ]; then
  # shellcheck source=installers/vulkan_toolchain.sh
  . installers/vulkan_toolchain.sh
  vulkan_cmake_args
  args=("${VULKAN_CMAKE_ARGS[@]}")
elif [ -n "${CUDA_ARCHITECTURES:-}" ]; then
  args+=(-DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHITECTURES")
fi
# A module of its own (GGML_BACKEND_DL), no CPU backend: the installed llama.cpp has that. It
# finds libggml-base in the process that loads it, the installed llama-cpp-python's.
case "$(uname -s)" in Darwin) rpath='@loader_path' ;; *) rpath='$ORIGIN' ;; esac
out=build/llama-$kind
cmake -S "$src/vendor/llama.cpp" -B "$out" -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU=OFF -DBUILD_SHARED_LIBS=ON \
  -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON -DCMAKE_INSTALL_RPATH="$rpath" \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF \
  -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF "${args[@]}" \
  | { grep -E "glslc|Vulkan|CUDA" || true; }
cmake --build "$out" --config Release -j "${JOBS:-2}" --target "ggml-$kind"

if [ -z "$into" ]; then
  into=$("$python" -c 'import sys; from assistant import paths; print(paths.gpu_modules_dir(sys.argv[1]))' "$version" 2>/dev/null \
    || .venv/bin/python -c 'import sys; from assistant import paths; print(paths.gpu_modules_dir(sys.argv[1]))' "$version")
fi
mkdir -p "$into"
find "$out/bin" -maxdepth 1 -name "*ggml-$kind.*" -exec cp {} "$into"/ \;
ls "$into" | grep -q "ggml-$kind" || { echo "no $kind module came out of the build" >&2; exit 1; }
echo "Built the $kind module for llama-cpp-python $version into $into"
