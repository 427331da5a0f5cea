"""Acquisition and the user API: the tracer, `jit`, the cache and its key, the jitted module, examine."""
