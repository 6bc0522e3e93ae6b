"""`rosdep install --from-paths src` gives a workspace everything the package imports.

Every third-party module the package imports is either a dependency in package.xml whose key
resolves offline in the rosdep database (../shared/ros2/rosdep: base.yaml, python.yaml) or is a
ROS package released for both Jazzy and Kilted, or is the one documented pip step
(requirements-ros.txt), or an optional extra named in the README. An unknown key makes
`rosdep install` fail; a missing one makes a node die on its first import.
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
ROSDEP = REPO.parent / "shared" / "ros2" / "rosdep"
DISTROS = ("jazzy", "kilted")
PLATFORM = ("ubuntu", "noble")  # the Ubuntu of both Jazzy and Kilted

# import name -> rosdep key declared as <exec_depend>
ROSDEP_KEYS = {
    "numpy": "python3-numpy",
    "scipy": "python3-scipy",
    "yaml": "python3-yaml",
    "cv2": "python3-opencv",
    "skimage": "python3-skimage",
    "PIL": "python3-pil",
    "soundfile": "python3-soundfile",
    "matplotlib": "python3-matplotlib",
    "onnxruntime": "python3-onnxruntime-pip",
    "rosbags": "python3-rosbags-pip",
}
# import name -> pip distribution of requirements-ros.txt (rosdep cannot pin it)
PIP_STEP = {"mediapipe": "mediapipe", "samplerate": "samplerate"}
# import name -> pip distribution of an optional extra (README): the torch backend, training and
# the official network
OPTIONAL = {"torch": "torch", "safetensors": "safetensors", "onnx": "onnx", "tqdm": "tqdm",
            "transformers": "transformers"}


@pytest.fixture(scope="module")
def rosdep_db() -> dict:
    if not ROSDEP.is_dir():
        pytest.skip(f"{ROSDEP} not found (the rosdep database snapshot beside the repository)")
    db = {}
    for name in ("base.yaml", "python.yaml"):
        db.update(yaml.safe_load((ROSDEP / name).read_text()))
    return db


@pytest.fixture(scope="module")
def released() -> dict[str, set[str]]:
    """{distro: names of the ROS packages released in it}."""
    out = {}
    for distro in DISTROS:
        doc = yaml.safe_load((ROSDEP / f"{distro}-distribution.yaml").read_text())
        names = set()
        for repo, entry in doc["repositories"].items():
            release = entry.get("release")
            if release:
                names.update(release.get("packages") or [repo])
        out[distro] = names
    return out


@pytest.fixture(scope="module")
def package():
    from catkin_pkg.package import parse_package

    return parse_package(REPO / "package.xml")


def resolves(rule, os_name: str = PLATFORM[0], version: str = PLATFORM[1]) -> bool:
    """Whether a rosdep rule gives something to install on that platform (REP 111/112)."""
    if not isinstance(rule, dict):
        return False
    os_rule = rule.get(os_name)
    if isinstance(os_rule, list):
        return bool(os_rule)
    if not isinstance(os_rule, dict):
        return False
    if version in os_rule or "*" in os_rule:  # per-version rules
        os_rule = os_rule.get(version, os_rule.get("*"))
        if isinstance(os_rule, list):
            return bool(os_rule)
        if not isinstance(os_rule, dict):
            return False  # null: not available on this version
    for installer in ("apt", "pip"):
        if isinstance(os_rule.get(installer), dict) and os_rule[installer].get("packages"):
            return True
    return bool(os_rule.get("packages"))


def imported_modules() -> dict[str, str]:
    """Top-level names of every absolute import in the package and the launch file -> a file."""
    found = {}
    for path in sorted([*(REPO / "avatar_forcing_ros").rglob("*.py"), *(REPO / "launch").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(REPO)))
    return found


def test_the_resolver_reads_rosdep_rules_as_rosdep_does(rosdep_db):
    assert resolves(rosdep_db["python3-numpy"])
    assert resolves(rosdep_db["python3-onnxruntime-pip"])  # pip installer rule
    assert not resolves({"ubuntu": {"focal": ["x"], "noble": None}})
    assert "python3-onnxruntime" not in rosdep_db and "python3-safetensors" not in rosdep_db


def test_every_third_party_import_is_provided(released):
    ros_packages = released["jazzy"] | released["kilted"]
    unaccounted = {name: where for name, where in imported_modules().items()
                   if name not in sys.stdlib_module_names and name != "avatar_forcing_ros"
                   and name not in ros_packages
                   and name not in ROSDEP_KEYS and name not in PIP_STEP and name not in OPTIONAL}
    assert unaccounted == {}, "imports with no rosdep key, pip step or documented extra"


def test_rosdep_keys_of_the_imports_are_declared_in_package_xml(package, released):
    declared = {d.name for d in package.exec_depends + package.build_depends}
    imports = imported_modules()
    missing = {ROSDEP_KEYS[name]: where for name, where in imports.items()
               if name in ROSDEP_KEYS and ROSDEP_KEYS[name] not in declared}
    ros_packages = released["jazzy"] | released["kilted"]
    missing.update({name: where for name, where in imports.items()
                    if name in ros_packages and name not in declared})
    assert missing == {}


def test_every_package_xml_key_resolves_for_jazzy_and_kilted(package, rosdep_db, released):
    """Per distribution, as rosdep reads package.xml there: a dependency whose condition
    (``$ROS_DISTRO == ...``) is false on it is not asked for."""
    unresolved = []
    for distro in DISTROS:
        package.evaluate_conditions({"ROS_DISTRO": distro})
        dependencies = {d.name for group in (package.buildtool_depends, package.build_depends,
                                              package.build_export_depends, package.exec_depends,
                                              package.test_depends) for d in group if d.evaluated_condition}
        for name in sorted(dependencies):
            if name in rosdep_db:
                if not resolves(rosdep_db[name]):
                    unresolved.append(f"{name}: no rule for {' '.join(PLATFORM)}")
            elif name not in released[distro]:
                unresolved.append(f"{name}: neither a rosdep key nor released in {distro}")
    assert unresolved == []


def test_hri_msgs_is_asked_for_only_where_it_is_released(package, released):
    """ROS4HRI's hri_msgs is optional at run time; rosdep installs it on Jazzy (released) and
    does not ask for it on Kilted (not released: `rosdep install` would fail)."""
    asked = {}
    for distro in DISTROS:
        package.evaluate_conditions({"ROS_DISTRO": distro})
        asked[distro] = any(d.name == "hri_msgs" and d.evaluated_condition for d in package.exec_depends)
    assert asked == {distro: "hri_msgs" in released[distro] for distro in DISTROS}
    assert asked["jazzy"]


def test_what_rosdep_cannot_provide_is_one_pinned_pip_step():
    lines = [line.split("#")[0].strip() for line in (REPO / "requirements-ros.txt").read_text().splitlines()]
    pins = dict(line.split("==") for line in lines if line)
    assert set(pins) == set(PIP_STEP.values())
    assert pins["mediapipe"] == "0.10.21"  # the last release with the face-mesh model inside
    readme = (REPO / "README.md").read_text()
    assert re.search(r"pip install -r \S*requirements-ros\.txt", readme)
    extras = re.search(r"pip install (?:--\S+ )*((?:[\w-]+(?:==\S+)? ?)+)\s*# optional", readme)
    assert extras, "README: the optional extras' pip line, ending in '# optional ...'"
    assert {re.split("==", r)[0] for r in extras.group(1).split()} == set(OPTIONAL.values())
