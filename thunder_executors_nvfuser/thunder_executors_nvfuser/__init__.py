"""Thunder's nvFuser executor: fuses regions of primitives into nvFuser kernels through `nvfuser_direct`.

`thunder_executors_nvfuser.plugin` is what Thunder imports at discovery (it imports nothing heavy); the
executor (`thunder_executors_nvfuser.executor`) is imported when first used, and nvFuser itself only when
the first fusion is built.
"""

__version__ = "0.1.0"
