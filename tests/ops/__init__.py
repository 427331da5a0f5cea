"""The op database: per-family test modules over the shared machinery in `opdb`."""
