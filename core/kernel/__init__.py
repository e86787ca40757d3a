"""The bottom layer: the kernel as mrun uses it. Syscalls Python's stdlib lacks (``syscalls``),
capability names (``capnames``), facts read off /proc (``proc``), and path resolution inside a
root that no symlink or ``..`` can leave (``inroot``). Everything above may import these; they
import nothing of mrun's but ``errors``. See ARCHITECTURE.md for the layers.
"""
