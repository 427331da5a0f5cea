"""Thunder's command line: ``python -m thunder <command>``.

Commands:
    plugins    list the plugins found, the executors, transforms and bundles they offer (each executor
               with its package, priority, and whether it is available here or why not), and any
               failures; `--options` adds the options each available executor declares.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from thunder.extend.hookspecs import ENTRY_POINT_GROUP
from thunder.extend.registry import AUTOLOAD_ENV_VAR, PluginLoadWarning, PluginRegistry, default_registry


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]], right: Sequence[int] = ()) -> list[str]:
    """Align ``rows`` under ``header`` in columns two spaces apart; columns in ``right`` are right-aligned."""
    cells = [[str(cell) for cell in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        padded = [cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  " + "  ".join(padded).rstrip())
    return lines


def describe_plugins(registry: PluginRegistry, load: bool = True, options: bool = False) -> list[str]:
    """The report that ``python -m thunder plugins`` prints, as lines (with ``options``: each available
    executor's declared options; that loads the executors)."""
    with warnings.catch_warnings():
        # Every failure is listed at the end of the report; the warnings would repeat them.
        warnings.simplefilter("ignore", PluginLoadWarning)
        executor_rows = registry.executor_rows(load=load or options)
        bundles = registry.get_plugin_bundles()
        transforms = registry.get_transform_specs()
        option_lines = _describe_options(registry, executor_rows) if options else []
        plugins = registry.plugins
        failures = registry.failures

    lines = [f"Executors (plugins from the entry-point group {ENTRY_POINT_GROUP!r}):"]
    if executor_rows:
        table = []
        for row in executor_rows:
            flags = ", ".join(flag for flag, on in (("always", row.always), ("opt-in", not row.default)) if on)
            table.append([row.name, row.plugin, row.source, row.priority, flags, row.status])
        header = ["name", "plugin", "distribution", "priority", "flags", "status"]
        lines += format_table(header, table, right=[3])
    else:
        lines.append("  (none)")

    lines += option_lines
    if transforms:
        lines += ["", "Transforms (thunder.jit(fn, transforms=[name])):"]
        table = [[spec.name, info.name, info.source, "default" if spec.default else "", spec.description]
                 for spec, info in transforms]  # fmt: skip
        lines += format_table(["name", "plugin", "distribution", "flags", "description"], table)

    if bundles:
        lines += ["", "Plugin bundles:"]
        table = [
            [
                bundle.name,
                info.name,
                info.source,
                ", ".join(_name_of(ex) for ex in bundle.executors),
                bundle.description,
            ]
            for bundle, info in bundles
        ]
        lines += format_table(["name", "plugin", "distribution", "executors", "description"], table)

    lines += ["", "Plugins:"]
    lines += format_table(["plugin", "distribution", "origin"], [[p.name, p.source, p.origin] for p in plugins])
    if not registry.autoload:
        lines.append(f"  third-party plugins were not loaded: {AUTOLOAD_ENV_VAR} is set")
    if registry.blocked:
        lines.append(f"  blocked: {', '.join(sorted(registry.blocked))}")

    if failures:
        lines += ["", "Plugin failures:"]
        lines += [f"  {failure}" for failure in failures]
    return lines


def _describe_options(registry: PluginRegistry, rows) -> list[str]:
    """Each available executor's options: name, type, default and help (thunder.jit's executor_options)."""
    lines = ["", "Executor options (thunder.jit(fn, executor_options={executor: {option: value}})):"]
    table = []
    for row in rows:
        if not row.available:
            continue
        declared = getattr(registry.get_executor(row.name), "declared_options", {})
        for option in declared.values():
            types = option.type if isinstance(option.type, tuple) else (option.type,)
            table.append([row.name, option.name, "|".join(t.__name__ for t in types), repr(option.default), option.help])
    if table:
        lines += format_table(["executor", "option", "type", "default", "help"], table)
    else:
        lines.append("  (no executor declares options)")
    return lines


def _name_of(ex: object) -> str:
    return ex if isinstance(ex, str) else str(getattr(ex, "name", ex))


def _plugins_command(args: argparse.Namespace) -> int:
    print("\n".join(describe_plugins(default_registry(), load=not args.no_load, options=args.options)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m thunder", description="Thunder, a deep learning compiler for PyTorch."
    )
    commands = parser.add_subparsers(title="commands", dest="command", required=True, metavar="<command>")
    plugins = commands.add_parser(
        "plugins",
        help="list plugins, their executors and bundles, and failures",
        description="List the plugins found, the executors they offer (package, priority, available or why not), "
        "their plugin bundles, and the plugins that failed to load.",
    )
    plugins.add_argument(
        "--no-load",
        action="store_true",
        help="do not load the available executors (faster; a failing load() then goes unnoticed)",
    )
    plugins.add_argument("--options", action="store_true",
                         help="also list the options each available executor declares (loads the executors)")
    plugins.set_defaults(run=_plugins_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for a missing or unknown command)."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
