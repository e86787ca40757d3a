"""containerd shims (the shim v2 daemon lands with its own issue)."""
