"""The package's ROS and pip metadata agree with each other and with the files in the repository."""
import os
import re
import sys
from pathlib import Path

import pytest

import avatar_forcing_ros

REPO = Path(__file__).resolve().parent.parent
INSTALLED_AS_SHARE_FILES = ("launch", "config", "models")  # setup.py data_files, CMake install


@pytest.fixture(scope="module")
def ros_package():
    catkin_pkg = pytest.importorskip("catkin_pkg.package")
    warnings = []
    package = catkin_pkg.parse_package(REPO / "package.xml", warnings=warnings)
    package.evaluate_conditions(os.environ)
    return package, warnings


@pytest.fixture(scope="module")
def distribution():
    """setup.py's Distribution, without building or installing anything."""
    import setuptools  # noqa: F401  (provides distutils on Python 3.12+)
    from distutils.core import run_setup

    cwd = os.getcwd()
    os.chdir(REPO)  # setup.py globs relative paths
    try:
        return run_setup("setup.py", stop_after="init")
    finally:
        os.chdir(cwd)


def test_package_xml_passes_catkin_pkg_validation(ros_package):
    package, warnings = ros_package
    package.validate()
    assert warnings == []
    assert package.package_format == 3
    assert package.get_build_type() == "ament_cmake"
    assert "rosidl_interface_packages" in [group.name for group in package.member_of_groups]


def test_bundled_audio_common_msgs_package_xml_is_valid():
    from catkin_pkg.package import parse_package

    parse_package(REPO / "third_party" / "audio_common_msgs" / "package.xml").validate()


def test_versions_agree(ros_package, distribution):
    package, _ = ros_package
    assert package.version == distribution.get_version() == avatar_forcing_ros.__version__


def test_every_launch_config_and_model_file_is_installed_by_setup_py(distribution):
    installed = {os.path.normpath(source) for _, sources in distribution.data_files
                 for source in sources}
    in_repo = {str(path.relative_to(REPO)) for folder in INSTALLED_AS_SHARE_FILES
               for path in (REPO / folder).rglob("*")
               if path.is_file() and "__pycache__" not in path.parts}
    assert in_repo - installed == set()
    assert {"package.xml", "resource/avatar_forcing_ros"} <= installed


def test_every_node_entry_point_is_a_ros2_run_executable_in_cmake(distribution):
    console_scripts = dict(
        [part.strip() for part in line.split("=")]
        for line in distribution.entry_points["console_scripts"])
    nodes = {name: target for name, target in console_scripts.items()
             if target.startswith("avatar_forcing_ros.ros.")}
    cmake_nodes = dict(re.findall(r'"(\w+)=([\w.]+)"', (REPO / "CMakeLists.txt").read_text()))
    assert {name: target.split(":")[0] for name, target in nodes.items()} == cmake_nodes
    assert all(target.endswith(":main") for target in nodes.values())


def test_ros_packages_the_code_imports_are_declared_in_package_xml(ros_package):
    """A node importing e.g. sensor_msgs needs <exec_depend>sensor_msgs</exec_depend>, or a
    rosdep install leaves it missing. ROS packages are recognised by the ament index."""
    package, _ = ros_package
    prefixes = [*os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep), sys.prefix]
    known_ros_packages = {entry.name for prefix in prefixes if prefix
                          for index in [Path(prefix, "share/ament_index/resource_index/packages")]
                          if index.is_dir() for entry in index.iterdir()}
    if not known_ros_packages:
        pytest.skip("no ament index found (ROS packages not installed)")
    declared = {dependency.name for dependency in
                package.build_depends + package.exec_depends + package.buildtool_depends}

    from test_workspace_dependencies import imported_modules

    imported = imported_modules()
    undeclared = {name: where for name, where in imported.items()
                  if name in known_ros_packages and name not in declared
                  and name != "avatar_forcing_ros"}
    assert undeclared == {}
