"""mrun: one runtime for Linux and WebAssembly containers."""

__version__ = "0.1.0"
OCI_VERSION = "1.2.0"
