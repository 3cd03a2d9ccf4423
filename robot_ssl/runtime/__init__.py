"""The runtime: the one drive loop that `record`, `run`, `replay --live` and the
closed-loop trials are made of (robot_ssl.runtime.loop.DriveLoop), with its scheduler
(schedule), stop handling (stopping), host watchdog (watchdog), latency statistics
(latency), the interfaces of its parts (interfaces) and the policies made from
controllers (policies). It imports no torch and no later stage: policies and observers
are handed to it."""
