"""Recording on the robot: cameras, the robot sampler, the recorder, device set-up, the wander controller."""
