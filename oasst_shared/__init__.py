"""Open-Assistant shared library: message schemas as msgspec Structs, a streaming codec,
error codes, model configs and the backend API client.

Importing the package itself is cheap: submodules are imported on demand.
"""

__version__ = "2.0.0"
