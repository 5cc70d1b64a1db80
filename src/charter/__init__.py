"""charter: a toolkit for Constitutional AI."""

__version__ = "0.1.0"
