"""socialpulse: measure whether companies succeed on social media, against their own goals."""

__version__ = "0.1.0"
