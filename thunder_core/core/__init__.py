"""The IR: dtypes and devices, proxies, symbols and bound symbols, traces, pytrees.

This layer knows nothing of torch operators or executors.
"""
