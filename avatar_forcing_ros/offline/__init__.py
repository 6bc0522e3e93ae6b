"""Without ROS: rosbag2 files, replay of a bag through the pipeline stages, recordings to
training data, timeline figures, video."""
