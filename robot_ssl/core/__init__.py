"""Foundations every stage shares: errors, configs, robot/camera specs, geometry, odometry, device protocols, atomic output files."""
