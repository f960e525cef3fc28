"""The package version, in a module of its own so that any module can read it without
importing the package's front door (`xai_core/__init__.py`)."""

__version__ = "0.1.0"
