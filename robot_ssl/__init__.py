"""robot-ssl: self-supervised long-range obstacle perception for a Thymio-class robot."""

__version__ = "0.1.0"
