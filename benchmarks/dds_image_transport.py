"""Camera-sized images between two processes over Fast DDS: frames received of N, and latency.

    python benchmarks/dds_image_transport.py [--frames 120] [--rate 30] [--size 480x480]

For each Fast DDS set-up -- stock, and the package's profile config/fastdds_shm_profile.xml
(16 MiB shared memory + UDP on 127.0.0.1) -- and each QoS -- best effort (sensor data, as camera
topics use) and reliable -- a subscriber process and a publisher process are started. The
publisher waits for the subscription to match, sends 1 s of warm-up frames, then N rgb8
sensor_msgs/Image frames at the given rate, each stamped when sent; the subscriber counts the N
and measures send-to-callback latency. Prints one row per set-up and QoS.

Discovery stays on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) on a random domain.
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

PROFILE = Path(__file__).resolve().parent.parent / "config" / "fastdds_shm_profile.xml"


def qos_profile(name):
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    if name == "best_effort":
        return qos_profile_sensor_data
    return QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def run_subscriber(args):
    """Count measured frames and their latency until SIGINT; then print a JSON summary."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("image_benchmark_subscriber")
    latencies_ms = {}

    def on_image(msg):
        if msg.header.frame_id.startswith("frame"):
            sent_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            latencies_ms[msg.header.frame_id] = (time.time_ns() - sent_ns) / 1e6

    node.create_subscription(Image, args.topic, on_image, qos_profile(args.qos))
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    print(json.dumps({"latencies_ms": sorted(latencies_ms.values())}), flush=True)
    rclpy.try_shutdown()


def run_publisher(args):
    import rclpy
    from sensor_msgs.msg import Image

    width, height = map(int, args.size.split("x"))
    rclpy.init()
    node = rclpy.create_node("image_benchmark_publisher")
    publisher = node.create_publisher(Image, args.topic, qos_profile(args.qos))
    image = Image(height=height, width=width, encoding="rgb8", step=3 * width,
                  data=os.urandom(3 * width * height))
    deadline = time.monotonic() + 30
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            sys.exit("no subscriber matched in 30 s")
        rclpy.spin_once(node, timeout_sec=0.01)

    def send(frame_id):
        now = time.time_ns()
        image.header.stamp.sec, image.header.stamp.nanosec = divmod(now, 1_000_000_000)
        image.header.frame_id = frame_id
        publisher.publish(image)

    period = 1.0 / args.rate
    for _ in range(int(args.rate)):  # 1 s warm-up, not counted
        send("warmup")
        time.sleep(period)
    start = time.monotonic()
    for i in range(args.frames):
        send(f"frame{i}")
        time.sleep(max(0.0, start + (i + 1) * period - time.monotonic()))
    end = time.monotonic() + 1.0  # let reliable resends finish
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    rclpy.try_shutdown()


def measure(args, use_profile, qos):
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_LOCALHOST_ONLY": "1",
           "ROS_DOMAIN_ID": str(args.domain_id)}
    for variable in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE"):
        env.pop(variable, None)
        if use_profile:
            env[variable] = str(PROFILE)
    common = [sys.executable, __file__, "--qos", qos, "--frames", str(args.frames),
              "--rate", str(args.rate), "--size", args.size, "--topic", args.topic]
    subscriber = subprocess.Popen([*common, "--role", "sub"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
    publisher = subprocess.Popen([*common, "--role", "pub"], env=env, stderr=subprocess.PIPE,
                                 text=True)
    try:
        _, publisher_errors = publisher.communicate(timeout=120)
    finally:
        subscriber.send_signal(signal.SIGINT)
        output, subscriber_errors = subscriber.communicate(timeout=30)
    if publisher.returncode != 0:
        raise RuntimeError(f"publisher failed:\n{publisher_errors}")
    if subscriber.returncode != 0 or not output.strip():
        raise RuntimeError(f"subscriber failed:\n{subscriber_errors}")
    return json.loads(output.strip().splitlines()[-1])["latencies_ms"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--rate", type=float, default=30.0, help="frames per second")
    parser.add_argument("--size", default="480x480", help="WIDTHxHEIGHT of the rgb8 image")
    parser.add_argument("--topic", default="/benchmark/image")
    parser.add_argument("--role", choices=["sub", "pub"], help=argparse.SUPPRESS)
    parser.add_argument("--qos", default="best_effort", help=argparse.SUPPRESS)
    parser.add_argument("--domain-id", type=int, default=random.randint(101, 200),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "sub":
        return run_subscriber(args)
    if args.role == "pub":
        return run_publisher(args)

    print(f"{args.size} rgb8 sensor_msgs/Image, {args.frames} frames at {args.rate:g} Hz, "
          f"two processes, ROS_DOMAIN_ID={args.domain_id}")
    print(f"{'Fast DDS set-up':<32} {'QoS':<12} {'received':>10} {'median ms':>10} {'p95 ms':>8}")
    for use_profile in (False, True):
        for qos in ("best_effort", "reliable"):
            latencies = measure(args, use_profile, qos)
            setup = "package profile (SHM 16 MiB)" if use_profile else "stock"
            if latencies:
                median = latencies[len(latencies) // 2]
                p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
                timing = f"{median:>10.1f} {p95:>8.1f}"
            else:
                timing = f"{'-':>10} {'-':>8}"
            print(f"{setup:<32} {qos:<12} {len(latencies):>5}/{args.frames:<4} {timing}", flush=True)


if __name__ == "__main__":
    main()
