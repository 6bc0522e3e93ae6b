"""The pure-Python core (no rclpy): motion space, audio, images, perception, the streaming
runtime, the pipeline stages the nodes and the replay both drive, and telemetry."""
