"""The runtime's operations that build a sandbox, one module each, as named steps (``create``,
``exec``) over one ``builder``. ``mrun.runtime.Runtime`` is the API on top of them."""
