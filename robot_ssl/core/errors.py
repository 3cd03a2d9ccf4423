"""Exception hierarchy of the robot_ssl package: one base class, precise subclasses."""


class RobotSSLError(Exception):
    """Base class of every error robot_ssl raises on purpose (the CLI prints it in one line)."""


class SpecError(RobotSSLError):
    """A robot or camera description is invalid or cannot be read."""


class ConfigError(RobotSSLError, ValueError):
    """A settings dataclass (the live loop's, the steering law's, the online learner's) got
    a value out of range; a ValueError too, as these raised before they were RobotSSLErrors."""
