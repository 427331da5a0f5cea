"""The core's own plugin: registers the executors that ship with thunder through the `thunder.plugins`
entry point, exactly like a third-party package. Importing this module is cheap: each executor's module
is imported only when the executor is first used."""

from __future__ import annotations

import importlib

from thunder.extend.hookspecs import ExecutorSpec, hookimpl


def _loader(module: str):
    return lambda: importlib.import_module(module).ex


@hookimpl
def thunder_executors():
    return [
        ExecutorSpec("torch", priority=0, load=_loader("thunder.executors.torchex"), always=True,
                     description="PyTorch eager; runs every operation"),
        ExecutorSpec("python", priority=-10, load=_loader("thunder.executors.pythonex"), always=True,
                     description="pure-Python bookkeeping symbols"),
    ]  # fmt: skip
