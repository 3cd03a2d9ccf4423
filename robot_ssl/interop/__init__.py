"""Interop: sessions to and from ROS 1 / ROS 2 bags and MCAP files (rosbags; no ROS install).

One module per job: `ros_types` (the custom message definitions and the typestore),
`export_mcap` (a session as MCAP or a ROS 2 bag), `import_bag` (a bag as a session).
Imports no torch; reads and writes sessions through robot_ssl.io.
"""
