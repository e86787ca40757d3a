"""Built-in backends. Each registers through the ``mrun.backends`` entry-point group."""
