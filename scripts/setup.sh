#!/usr/bin/env bash
# Set up a development environment for avatar_forcing_ros on a machine without a ROS install.
#
#   scripts/setup.sh            # then: source scripts/env.sh
#
# What it does, each step skipped when already done (safe to re-run):
#   1. apt packages: espeak-ng (speech synthesis), flite + festival (voices of other
#      synthesizers for the held-out evaluation set), ffmpeg, xvfb, and the compilers and headers
#      the message build needs;
#   2. a venv in .venv with requirements.txt (real ROS 2 Kilted rclpy + Fast DDS from PyPI
#      wheels, the rosidl generators, the ML stack);
#   3. the ROS message packages built with cmake from those wheels and installed into the venv:
#      third_party/audio_common_msgs (only when no real audio_common_msgs is importable) and this
#      package's msg/ (FaceMotion);
#   4. avatar_forcing_ros installed in editable mode: `import avatar_forcing_ros` is the source
#      tree (edits take effect at once), `from avatar_forcing_ros.msg import FaceMotion` finds the
#      generated code, and the console scripts (avatar-forcing, the nodes) are in .venv/bin;
#   5. where ../shared/ros2 lies beside the repository (CI): `ros2 launch`, `ros2 run`, the ros2
#      CLI and launch_ros from its sources (not on PyPI; on a robot they come from the ROS 2
#      distribution, and this project does not ship them), for the workspace tests; colcon is
#      in requirements.txt.
#
# Environment: PYTHON (interpreter for the venv, default python3; 3.10-3.12, x86_64: the ROS
# wheels exist for those only), VENV (default <repo>/.venv).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$repo/.venv}
python=${PYTHON:-python3}
start=$SECONDS
step() { printf '\n== %s (%ds)\n' "$*" $((SECONDS - start)); }

# --- 1. system packages -------------------------------------------------------------------
apt_packages=(espeak-ng libespeak-ng-dev flite festival festvox-kallpc16k ffmpeg xvfb cmake g++ make)
python_h=$("$python" -c 'import sysconfig, os; print(os.path.join(sysconfig.get_paths()["include"], "Python.h"))')
[ -f "$python_h" ] || apt_packages+=(python3-dev)
"$python" -c 'import venv, ensurepip' 2>/dev/null || apt_packages+=(python3-venv)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "apt-get install ${missing[*]}"
  sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- 2. venv and Python packages ---------------------------------------------------------
"$python" - <<'EOF'
import platform, sys
if not ((3, 10) <= sys.version_info[:2] <= (3, 12) and platform.machine() == "x86_64"):
    sys.exit(f"The ROS 2 wheels need CPython 3.10-3.12 on x86_64, not {sys.version.split()[0]} "
             f"on {platform.machine()}: set PYTHON, or use a ROS 2 install and colcon build.")
EOF
if [ ! -x "$venv/bin/python" ]; then
  step "python venv $venv"
  "$python" -m venv "$venv"
fi
py=$venv/bin/python
step "pip install -r requirements.txt"
"$py" -m pip install -q -r "$repo/requirements.txt"

# --- 3. messages -----------------------------------------------------------------------------
# The wheels' CMake export files name the include folders of the machine that built them
# (/opt/python/cp3XX-cp3XX/...). Point them at this interpreter's Python and numpy headers.
step "patch the ROS wheels' CMake files for this interpreter"
"$py" - "$venv" <<'EOF'
import pathlib, re, sys, sysconfig
import numpy

share = pathlib.Path(sys.argv[1]) / "share"
python_include = sysconfig.get_paths()["include"]
built_on = r"/opt/python/cp3\d+-cp3\d+"
replacements = [
    (re.compile(built_on + r"/include/python3\.\d+"), python_include),
    (re.compile(built_on + r"/lib/python3\.\d+/site-packages/numpy/_?core/include"), numpy.get_include()),
]
patched = 0
for path in share.glob("*/cmake/*.cmake"):
    text = path.read_text()
    if "/opt/python/" not in text:
        continue
    new = text
    for pattern, replacement in replacements:
        new = pattern.sub(replacement, new)
    if new != text:
        path.write_text(new)
        patched += 1
print(f"patched {patched} file(s)")
EOF

# Build and install one message package into the venv.
#   build_msgs <package name> <source dir> [extra cmake args...]
build_msgs() {
  local build=$repo/build/venv/$1 src=$2; shift 2
  AMENT_PREFIX_PATH=$venv CMAKE_PREFIX_PATH=$venv cmake -S "$src" -B "$build" \
    -DCMAKE_INSTALL_PREFIX="$venv" -DCMAKE_PREFIX_PATH="$venv" \
    -DPython3_EXECUTABLE="$py" -DPython3_FIND_VIRTUALENV=ONLY \
    -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release "$@" >"$build.log" 2>&1 \
    && cmake --build "$build" -j "$(nproc)" >>"$build.log" 2>&1 \
    && cmake --install "$build" >>"$build.log" 2>&1 \
    || { tail -40 "$build.log"; echo "message build of $src failed; full log: $build.log" >&2; return 1; }
}
mkdir -p "$repo/build/venv"

# audio_common_msgs: use a real one (e.g. from a sourced ROS 2 install) when there is one.
audio_msgs_at=$("$py" -c 'import audio_common_msgs.msg, os; print(os.path.dirname(audio_common_msgs.__file__))' 2>/dev/null || true)
if [ -n "$audio_msgs_at" ] && [[ "$audio_msgs_at" != "$venv"/* ]]; then
  step "audio_common_msgs found at $audio_msgs_at: not building third_party/audio_common_msgs"
else
  step "build third_party/audio_common_msgs"
  build_msgs audio_common_msgs "$repo/third_party/audio_common_msgs"
fi

# FaceMotion: the generated Python package (also named avatar_forcing_ros) goes into a folder of
# its own, off sys.path; step 4 tells the source package where it is.
generated=lib/avatar_forcing_ros-generated
step "build msg/ (avatar_forcing_ros interfaces)"
build_msgs avatar_forcing_ros "$repo" -DINTERFACES_ONLY=ON -DPYTHON_INSTALL_DIR="$generated"
rm -rf "$venv/$generated"/avatar_forcing_ros-*.egg-info  # would be a second avatar_forcing_ros distribution
# The package's share folder (found through the ament index, e.g. by the launch file) links to
# the source tree's config/ and models/, so that edits there take effect at once. launch/ is a
# real folder of links to the files: `ros2 launch <package> <file>` walks the share folder
# without following a linked folder.
for dir in launch config models; do
  link=$venv/share/avatar_forcing_ros/$dir
  if [ -L "$link" ] || [ "$dir" = launch ]; then rm -rf "$link"; fi
  [ -d "$repo/$dir" ] || continue
  if [ "$dir" = launch ]; then
    mkdir -p "$link"
    for f in "$repo/$dir"/*; do ln -sfn "$f" "$link/"; done
  else
    ln -sfn "$repo/$dir" "$link"
  fi
done

# --- 4. the package itself -------------------------------------------------------------------
step "pip install -e . (source tree, console scripts)"
"$py" -m pip install -q --no-deps -e "$repo"
# avatar_forcing_ros/__init__.py calls pkgutil.extend_path(), which appends the folders listed
# in an `avatar_forcing_ros.pkg` file on sys.path to the package's __path__: the source tree
# stays the package, and `avatar_forcing_ros.msg` resolves in the generated folder.
site_packages=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$venv/$generated/avatar_forcing_ros" >"$site_packages/avatar_forcing_ros.pkg"
# `ros2 run avatar_forcing_ros <node>` and launch_ros look for executables in
# <prefix>/lib/<package>/ (colcon installs them there): link the node console scripts.
libexec=$venv/lib/avatar_forcing_ros
rm -rf "$libexec" && mkdir -p "$libexec"
for exe in $("$py" -c 'from importlib.metadata import entry_points
print(" ".join(e.name for e in entry_points(group="console_scripts") if e.value.startswith("avatar_forcing_ros.ros.")))'); do
  ln -sfn "$venv/bin/$exe" "$libexec/$exe"
done

# --- 5. ros2 launch / CLI for the workspace tests (CI) -----------------------------------------
ros2_sources=$(cd "$repo/.." && pwd)/shared/ros2
if [ -f "$ros2_sources/install.sh" ]; then
  step "ros2 launch + CLI from $ros2_sources"
  bash "$ros2_sources/install.sh" "$venv"
fi

step "check"
"$py" - <<'EOF'
import os, avatar_forcing_ros
from avatar_forcing_ros.msg import FaceMotion
from audio_common_msgs.msg import AudioDataStamped, AudioInfo
import rclpy
print("avatar_forcing_ros", avatar_forcing_ros.__version__, "from", os.path.dirname(avatar_forcing_ros.__file__))
print("FaceMotion fields:", ", ".join(FaceMotion.get_fields_and_field_types()))
EOF
step "done: source scripts/env.sh to use it"
