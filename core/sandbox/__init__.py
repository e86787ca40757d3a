"""The sandbox every backend runs in: namespaces, rootfs, devices, privileges."""
