"""The executors that ship with the core; they register through `thunder.executors.builtin_plugin`, the
same entry-point path as any third-party package."""
