"""The auto-labeller: labels from proximity readings and odometry, per session and in batches."""
