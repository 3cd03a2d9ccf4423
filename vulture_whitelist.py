"""Names `vulture` (make lint) would report as unused, with why each stays.

vulture reads this file as code: a name used here counts as used. Everything else it
reports is dead code to delete, not to add here. Keep an entry only with its reason.
"""

_ = object()

# Aseba wire protocol (firmware_bridge/protocol.py, bytecode.py): the message types and
# opcodes the firmware defines, spelled out so that a received one decodes to its name.
_.BOOTLOADER_RESET, _.BOOTLOADER_READ_PAGE, _.BOOTLOADER_WRITE_PAGE, _.BOOTLOADER_ACK
_.BOOTLOADER_PAGE_DATA_WRITE, _.BOOTLOADER_PAGE_DATA_READ, _.BOOTLOADER_DESCRIPTION
_.CHANGED_VARIABLES, _.GET_CHANGED_VARIABLES, _.WRITE_BYTECODE, _.REBOOT, _.SUSPEND_TO_RAM
_.SET_DEVICE_INFO, _.INVALID, _.NOT

# Attributes set on other libraries' objects, which read them: pyserial (link.py),
# onnxruntime's SessionOptions (inference/predictor.py), h5py (session_writer.py), PyAV
# (live/replay.py), numpy's array flags (sim/camera.py), argparse (cli/*.py).
_.dtr, _.intra_op_num_threads, _.inter_op_num_threads, _.execution_mode
_.graph_optimization_level, _.log_severity_level, _.swmr_mode, _.time_base, _.writeable
_.formatter_class

# A key of the robot spec file (core/spec.py): kept so that robot files carrying it load.
_.wheel_radius_m

# Fields of records returned to library users and shown in their repr, read by no code
# here: counters of the link and the onboard stream, a camera's health, a labelling
# result's plot, the time-offset curve, the compiled world's per-object arrays, a test
# helper's result shown in its assertion message (tests/playground.py).
_.inbox_dropped, _.watchdog_stops, _.failures, _.plot_path, _.correlations
_.box_reflectance, _.arena_height_m, _.arena_reflectance, _.segments_object
_.poll_interval_s

# Read by pytest, not by code: a module's marks; dataclass fields whose annotations the
# config checks are tested on (tests/unit/core/test_validation.py).
_.pytestmark, _.inners, _.either

# Never set or read: io/session_recovery.py's Opened.swmr, in the io package another
# change is splitting now; to delete there.
_.swmr

# pytest hooks, called by pytest by name (tests/conftest.py: tier markers from folders).
_.pytest_collection_modifyitems

# rosbags' ROS 1 writer reads its chunk size from this attribute (tests/system/test_bag_recovery.py
# writes bags of several chunks, as a long recording has).
_.chunk_threshold

# started by name in a child process (`python -c "from benchmarks.live_view_load import
# serve_synthetic ..."`): the live-view benchmark's and browser test's control view.
_.serve_synthetic
