"""The warm template: one process per node and mrun installation that has paid Python's start-up
and every import once (the core, pluggy and the backends, protobuf and the shim,
wasmtime with its engine and the compiled modules) and forks what a caller needs.

``client`` is what a short-lived caller (``containerd-shim-mrun-v2 start``, a docker-like ``mrun``
verb) runs first: it hands its argv, environment, working directory and descriptors over a
root-only unix socket and relays signals until it gets the exit status. A child forked from the
template takes on the caller's identity (``child``) and runs the very code the caller would have
run, so the result is the same; what differs is that nothing is imported. When there is no
template, or it is disabled (``MRUN_WARM=0``), stale, or broken, the caller runs cold.

``template`` is the server. It serves only callers it could have been (``peer``: root, the same
namespaces, capabilities and confinement) and only while its code is the installed code
(``fingerprint``); otherwise it says "cold" and the caller runs the work itself.
"""
