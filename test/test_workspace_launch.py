"""The package as a robot team uses it: cloned into a ROS 2 workspace, built with `colcon build`,
`source install/setup.bash`, started with `ros2 launch` / `ros2 run` under a namespace with
remapped topics and a parameter file of their own, checked with the ros2 command line, and
stopped with Ctrl-C (SIGINT to the process group, as a terminal sends it).

Needs colcon (requirements.txt) and the ros2 CLI + launch_ros (../shared/ros2/install.sh, which
scripts/setup.sh runs; on a robot: the ROS 2 distribution). The workspace is built once per module.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline_driver import PipelineDriver, mouth_cavity_pixels
from ros_helpers import python_stacks, wait_for

REPO = Path(__file__).resolve().parent.parent
PKG = "avatar_forcing_ros"
NODE_EXECUTABLES = {"perception_node", "generator_node", "renderer_node", "avatar_forcing_all", "recorder_node"}


class Workspace:
    """A colcon workspace with this repository in src/, and bash commands run on top of its
    install/setup.bash, in the environment a robot's terminal would have (no PYTHONPATH into a
    source tree, no Fast DDS profile unless the launch file gives one)."""

    def __init__(self, root: Path):
        self.root = root
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")}
        bin_dir = os.path.dirname(sys.executable)  # the venv's ros2 and colcon
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        prefixes = env.get("AMENT_PREFIX_PATH", "").split(os.pathsep)
        if sys.prefix not in prefixes:  # the venv is the "ROS installation" underlay
            env["AMENT_PREFIX_PATH"] = os.pathsep.join(p for p in [sys.prefix, *prefixes] if p)
        env["ROS_LOG_DIR"] = str(root / "ros_log")
        env["PYTHONUNBUFFERED"] = "1"
        self.env = env

    def build(self) -> subprocess.CompletedProcess:
        src = self.root / "src"
        src.mkdir(parents=True)
        (src / PKG).symlink_to(REPO)
        try:  # a ROS install (or scripts/setup.sh) provides audio_common_msgs; else build ours
            subprocess.run([sys.executable, "-c", "import audio_common_msgs.msg"], env=self.env, check=True,
                           capture_output=True)
        except subprocess.CalledProcessError:
            (src / "audio_common_msgs").symlink_to(REPO / "third_party" / "audio_common_msgs")
        return subprocess.run(["colcon", "build", "--event-handlers", "console_direct-"], cwd=self.root,
                              env=self.env, capture_output=True, text=True, timeout=600)

    def command(self, command: str) -> list[str]:
        return ["bash", "-c", f"source install/setup.bash && {command}"]

    def run(self, command: str, timeout: float = 60) -> str:
        result = subprocess.run(self.command(command), cwd=self.root, env=self.env, capture_output=True,
                                text=True, timeout=timeout)
        assert result.returncode == 0, f"`{command}` exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def start(self, command: str, log_name: str) -> "Launched":
        log = self.root / log_name
        with open(log, "w") as out:
            # a session of its own: SIGINT goes to the whole process group, as Ctrl-C does
            process = subprocess.Popen(self.command(f"exec {command}"), cwd=self.root, env=self.env,
                                       stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return Launched(process, log, command)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


class Launched:
    def __init__(self, process: subprocess.Popen, log: Path, command: str):
        self.process, self.log_path, self.name = process, log, command

    def poll(self):
        return self.process.poll()

    @property
    def returncode(self):
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def pids(self) -> dict[str, int]:
        """launch's 'process started with pid [N]' lines: executable name -> pid."""
        return {name: int(pid) for name, pid in
                re.findall(r"\[INFO\] \[(\w+?)-\d+\]: process started with pid \[(\d+)\]", self.log())}

    def interrupt(self, timeout: float = 30) -> int:
        """Ctrl-C in the terminal: SIGINT to the process group; returns the exit code."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            alive = [pid for pid in self.pids().values() if _alive(pid)]
            stacks = python_stacks(alive)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            raise AssertionError(f"`{self.name}` still running {timeout} s after SIGINT:\n{self.log_tail()}\n"
                                 f"still running: {alive}\n{stacks}")

    def kill(self):
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("ws"))
    for tool in ("colcon", "ros2"):
        assert shutil.which(tool, path=ws.env["PATH"]), (
            f"`{tool}` not found: run scripts/setup.sh (colcon-common-extensions, ../shared/ros2/install.sh)")
    started = time.monotonic()
    result = ws.build()
    assert result.returncode == 0, f"colcon build failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    print(f"colcon build: {time.monotonic() - started:.1f} s")
    # a shipped parameter file with one value changed, as a team keeps its own
    shipped = ws.root / "install" / PKG / "share" / PKG / "config" / "avatar_forcing.yaml"
    text = shipped.read_text()
    assert "guidance_scale: 2.0 " in text
    (ws.root / "robot.yaml").write_text(text.replace("guidance_scale: 2.0 ", "guidance_scale: 3.25 "))
    launched: list[Launched] = []
    ws.launched = launched
    yield ws
    for process in launched:
        process.kill()
    # the CLI may have started a daemon for this domain; leave nothing running
    subprocess.run(ws.command("ros2 daemon stop"), cwd=ws.root, env=ws.env, capture_output=True, timeout=30)


def start(ws: Workspace, command: str, log_name: str) -> Launched:
    process = ws.start(command, log_name)
    ws.launched.append(process)
    return process


def cli(ws: Workspace, command: str, timeout: float = 60) -> str:
    return ws.run(f"ros2 {command}", timeout=timeout)


def wait_for_nodes(ws: Workspace, names: set[str], processes, timeout: float = 90) -> set[str]:
    seen: set[str] = set()

    def listed():
        seen.clear()
        seen.update(cli(ws, "node list --spin-time 1").split())
        return names <= seen

    wait_for(listed, timeout=timeout, processes=processes, what=f"nodes {sorted(names)} in `ros2 node list`")
    return seen


def ask(ws: Workspace, command: str, processes, timeout: float = 30) -> str:
    """The answer of a ros2 CLI command about a node, once the CLI's graph (the daemon's, just
    started maybe) knows the node: "Node not found" until then."""
    last = []

    def answer():
        result = subprocess.run(ws.command(f"ros2 {command}"), cwd=ws.root, env=ws.env,
                                capture_output=True, text=True, timeout=60)
        last[:] = [result.stderr]
        return result.stdout.strip() if result.returncode == 0 else None

    try:
        return wait_for(answer, timeout=timeout, processes=processes, what=f"ros2 {command}")
    except AssertionError as e:
        raise AssertionError(f"{e}\nlast stderr: {last}") from None


def param(ws: Workspace, node: str, name: str, processes) -> str:
    return ask(ws, f"param get {node} {name}", processes)


def wait_active(ws: Workspace, node: str, processes, timeout: float = 60):
    wait_for(lambda: ask(ws, f"lifecycle get {node}", processes).startswith("active"), timeout=timeout,
             processes=processes, what=f"{node} active")


def assert_clean_exit(process: Launched, executables, rc: int | None = None):
    """Ctrl-C ends the launch with 0, every node with 0 ("finished cleanly"), no traceback."""
    rc = process.interrupt() if rc is None else rc
    log = process.log()
    assert "Traceback" not in log, f"traceback on SIGINT:\n{process.log_tail()}"
    died = {executable: code for executable, code in
            re.findall(r"\[(\w+?)-\d+\]: process has died \[pid \d+, exit code (-?\d+)", log)}
    assert rc == 0 and not died, f"`{process.name}` exited {rc}, nodes died: {died}\n{process.log_tail()}"
    for executable in executables:
        assert re.search(rf"\[{executable}-\d+\]: process has finished cleanly", log), (
            f"{executable} did not exit 0 on SIGINT:\n{process.log_tail()}")


def test_colcon_build_installs_the_package_for_ros2_run_and_launch(workspace):
    prefix = cli(workspace, "pkg prefix avatar_forcing_ros").strip()
    assert Path(prefix) == workspace.root / "install" / PKG
    executables = {line.split()[1] for line in cli(workspace, "pkg executables avatar_forcing_ros").splitlines()}
    assert executables == NODE_EXECUTABLES
    share = Path(prefix) / "share" / PKG
    assert (share / "launch" / "avatar_forcing.launch.py").is_file()
    from avatar_forcing_ros.generation.factory import SHIPPED_MODEL
    assert (share / "models" / SHIPPED_MODEL / "model.onnx").is_file()
    # the message and the sources are one installed package, found from the workspace
    where = workspace.run("python -c 'import avatar_forcing_ros.msg as m, avatar_forcing_ros.ros.common as c; "
                          "print(m.__file__); print(c.__file__)'").split()
    assert all(path.startswith(prefix) for path in where), where



@pytest.mark.timeout(300)
def test_colcon_test_runs_the_package_tests(workspace):
    """`colcon test` runs test/ with pytest (ament_cmake_pytest); one fast test selected here."""
    workspace.run("PYTEST_ADDOPTS='-k test_versions_agree -p no:cacheprovider' "
                  "colcon test --packages-select avatar_forcing_ros --event-handlers console_direct-", timeout=240)
    result = workspace.run("colcon test-result --all --verbose")
    assert re.search(r"pytest\.xunit\.xml: 1 test, 0 errors, 0 failures, 0 skipped", result), result
    xunit = (workspace.root / "build" / PKG / "test_results" / PKG / "pytest.xunit.xml").read_text()
    assert 'name="test_versions_agree"' in xunit

@pytest.mark.timeout(300)
def test_ros2_launch_under_a_namespace_with_remaps_and_a_parameter_file(workspace, ros_context):
    from avatar_forcing_ros.corpus.speech import synthesize
    from avatar_forcing_ros.render.stylised import StylisedFaceRenderer

    ws, outside = workspace, "/drv"
    launched_at = time.monotonic()
    launch = start(ws, "ros2 launch avatar_forcing_ros avatar_forcing.launch.py avatar_namespace:=robot "
                       f"avatar_config:={ws.root / 'robot.yaml'} "
                       # the robot's own topic names, outside the avatar's namespace
                       f"avatar_camera_topic:={outside}/camera/image_raw avatar_mic_topic:={outside}/user/audio "
                       f"avatar_mic_info_topic:={outside}/user/audio_info "
                       f"avatar_speech_topic:={outside}/avatar/speech "
                       f"avatar_speech_info_topic:={outside}/avatar/speech_info "
                       f"avatar_image_topic:={outside}/avatar/image "
                       # typed values: a date stays a string, 0 is a boolean
                       "avatar_record:=true avatar_record_path:=20260822 avatar_display:=0 "
                       "avatar_shm_transport:=true", "launch.log")
    drv = PipelineDriver(ros_context, outside)
    wait_for(lambda: drv.images, timeout=120, spin=ros_context, processes=[launch], what="a first avatar image")
    print(f"ros2 launch to first image: {time.monotonic() - launched_at:.1f} s")

    nodes = wait_for_nodes(ws, {"/robot/perception", "/robot/generator", "/robot/renderer", "/robot/recorder"},
                           [launch])
    print("ros2 node list:", sorted(nodes))
    assert param(ws, "/robot/generator", "guidance_scale", [launch]).split()[-1] == "3.25"  # the file's
    assert param(ws, "/robot/generator", "model", [launch]).split()[-1] == "default"
    assert param(ws, "/robot/recorder", "out", [launch]).strip() == "String value is: 20260822"
    assert param(ws, "/robot/renderer", "display", [launch]).strip() == "Boolean value is: False"
    assert param(ws, "/robot/perception", "use_sim_time", [launch]).strip() == "Boolean value is: False"
    for node in ("perception", "generator", "renderer"):
        wait_active(ws, f"/robot/{node}", [launch])

    # `ros2 topic hz` on the remapped output: frames keep coming
    hz = subprocess.run(ws.command(f"timeout -s INT 10 ros2 topic hz {outside}/avatar/image --window 10"),
                        cwd=ws.root, env=ws.env, capture_output=True, text=True, timeout=60).stdout
    rates = [float(r) for r in re.findall(r"average rate: ([\d.]+)", hz)]
    print("ros2 topic hz:", rates)
    assert rates and rates[-1] > 0, hz

    # the per-node Fast DDS profile reached the nodes (and only them: see the parent test)
    pids = launch.pids()
    environ = Path(f"/proc/{pids['generator_node']}/environ").read_bytes().split(b"\0")
    assert any(e.startswith(b"FASTDDS_DEFAULT_PROFILES_FILE=") and e.endswith(b"fastdds_shm_profile.xml")
               for e in environ)

    # speech on the remapped topic opens the avatar's mouth in the remapped image
    drv.wait_connected(["camera", "mic", "speech"], [launch], timeout=60)
    speech = np.concatenate([np.zeros(8000, np.float32), synthesize("Good morning to you.").audio])
    del drv.images[:]
    drv.stream(speech.size / 16000 + 1.0, speech=speech, processes=[launch])
    renderer = StylisedFaceRenderer()
    # frames are presented output_delay_s (+ compute) after their audio: wait for the speech's
    wait_for(lambda: max((mouth_cavity_pixels(m, renderer) for m in drv.images), default=0) > 50,
             timeout=30, spin=ros_context, processes=[launch], what="an open mouth in the remapped image")

    # lifecycle from the command line: the renderer stops and resumes
    assert "Transitioning successful" in cli(ws, "lifecycle set /robot/renderer deactivate")
    assert cli(ws, "lifecycle get /robot/renderer").startswith("inactive")
    assert "Transitioning successful" in cli(ws, "lifecycle set /robot/renderer activate")
    count = len(drv.images)
    wait_for(lambda: len(drv.images) > count + 5, timeout=30, spin=ros_context, processes=[launch],
             what="images after re-activation")

    rc = launch.interrupt()
    assert (ws.root / "20260822" / "metadata.yaml").is_file()  # the recorder closed its bag there
    assert_clean_exit(launch, ["perception_node", "generator_node", "renderer_node", "recorder_node"], rc)


PARENT_LAUNCH = """
import os
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription, LogInfo
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from ament_index_python.packages import get_package_share_directory


def generate_launch_description():
    avatar = os.path.join(get_package_share_directory("avatar_forcing_ros"), "launch", "avatar_forcing.launch.py")
    return LaunchDescription([
        # a robot bringup's own arguments, with the names every bringup uses
        DeclareLaunchArgument("model", default_value="robot.urdf"),
        DeclareLaunchArgument("namespace", default_value="base"),
        DeclareLaunchArgument("config", default_value="/nonexistent/robot_params.yaml"),
        DeclareLaunchArgument("display", default_value="yes please"),
        # the one argument shared on purpose: the whole robot runs on sim time or not
        DeclareLaunchArgument("use_sim_time", default_value="true"),
        IncludeLaunchDescription(PythonLaunchDescriptionSource(avatar), launch_arguments={
            "avatar_namespace": "face", "avatar_shm_transport": "true"}.items()),
        LogInfo(msg=["parent model is still ", LaunchConfiguration("model")]),
        # started after the include: must not inherit the avatar nodes' Fast DDS profile
        ExecuteProcess(cmd=["python3", "-c",
                            "import os; print('PARENT_PROFILE=' + os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE', 'none'))"],
                       output="screen"),
    ])
"""


@pytest.mark.timeout(240)
def test_included_from_a_bringup_with_its_own_model_and_namespace_arguments(workspace):
    ws = workspace
    (ws.root / "bringup.launch.py").write_text(textwrap.dedent(PARENT_LAUNCH))
    launch = start(ws, f"ros2 launch {ws.root / 'bringup.launch.py'} model:=robot.urdf", "bringup.log")
    wait_for_nodes(ws, {"/face/perception", "/face/generator", "/face/renderer"}, [launch])
    # the bringup's model:=robot.urdf did not become the motion model
    assert param(ws, "/face/generator", "model", [launch]).split()[-1] == "default"
    assert param(ws, "/face/renderer", "display", [launch]).strip() == "Boolean value is: False"
    for node in ("perception", "generator", "renderer"):
        assert param(ws, f"/face/{node}", "use_sim_time", [launch]).strip() == "Boolean value is: True"
    wait_for(lambda: "PARENT_PROFILE=" in launch.log(), timeout=30, processes=[launch], what="the parent's process")
    log = launch.log()
    assert "PARENT_PROFILE=none" in log
    assert "parent model is still robot.urdf" in log
    assert_clean_exit(launch, ["perception_node", "generator_node", "renderer_node"])


@pytest.mark.timeout(180)
def test_ros2_run_a_node_with_a_namespace_and_the_teams_parameter_file(workspace):
    ws = workspace
    node = start(ws, "ros2 run avatar_forcing_ros generator_node --ros-args -r __ns:=/robot3 "
                     f"--params-file {ws.root / 'robot.yaml'} -p model:=procedural", "run.log")
    wait_for_nodes(ws, {"/robot3/generator"}, [node])
    wait_active(ws, "/robot3/generator", [node])
    # the file's /**/generator section applies under a namespace; -p overrides it
    assert param(ws, "/robot3/generator", "guidance_scale", [node]).split()[-1] == "3.25"
    assert param(ws, "/robot3/generator", "model", [node]).split()[-1] == "procedural"
    rc = node.interrupt()
    assert "Traceback" not in node.log(), node.log_tail()
    assert rc == 0, node.log_tail()


def test_readme_table_lists_every_launch_argument_with_its_default():
    import importlib.util

    from launch import LaunchContext
    from launch.utilities import perform_substitutions

    spec = importlib.util.spec_from_file_location("avatar_launch", REPO / "launch" / "avatar_forcing.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = LaunchContext()
    declared = {a.name: perform_substitutions(context, a.default_value)
                for a in module.generate_launch_description().get_launch_arguments()}

    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("<!-- launch-arguments: begin -->"):readme.index("<!-- launch-arguments: end -->")]
    rows = re.findall(r"^\| `([\w]+)` \| `([^`]*)` \|", table, re.M)
    share = module.get_package_share_directory(PKG)
    documented = {name: "" if default == '""' else default.replace("<share>", share) for name, default in rows}
    assert documented == declared
    # a bringup's generic names cannot collide with these
    assert all(name.startswith("avatar_") or name == "use_sim_time" for name in declared)


def test_pip_route_ros2_launch_and_run_find_the_package():
    """The venv of scripts/setup.sh as a ROS prefix: `ros2 launch <package> <file>` walks the
    share folder (a linked launch/ folder would not be walked) and `ros2 run` looks in
    lib/<package>/ (linked console scripts)."""
    from ament_index_python.packages import get_package_prefix

    prefix = Path(get_package_prefix(PKG))
    if (prefix / "share" / PKG / "launch").is_symlink() and not (prefix / "lib" / PKG).is_dir():
        pytest.skip(f"{prefix} was laid out by an older scripts/setup.sh: re-run it")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")

    def ros2(*args):
        result = subprocess.run(["ros2", *args], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"ros2 {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    assert {line.split()[1] for line in ros2("pkg", "executables", PKG).splitlines()} == NODE_EXECUTABLES
    assert "'avatar_namespace'" in ros2("launch", PKG, "avatar_forcing.launch.py", "--show-args")
