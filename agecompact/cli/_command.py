"""The command classes every ``agecompact`` command and group is built from.

* A single-valued option given twice is a usage error (Click lets the last one win silently).
* Help texts read well at 80 columns off a terminal: a docstring's paragraphs are re-flowed (their
  hard line breaks would otherwise wrap mid-sentence), indented example lines and bullets are kept.
* The type column shows what to type: choices, a metavar, or the option's name in capitals, and
  nothing for flags (instead of ``<str>`` and ``<bool>``).
"""

from __future__ import annotations

import inspect
import re
from collections import Counter
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

_TYPE_NAMES = {"<int>": "INTEGER", "<int range>": "INTEGER", "<float>": "FLOAT", "<float range>": "FLOAT",
               "<path>": "PATH", "<file>": "FILE", "<directory>": "DIR"}


def reflow(text: str) -> str:
    """Join the lines of each paragraph; keep blank lines, indented blocks, bullets and ``\\b`` paragraphs."""
    out = []
    for para in inspect.cleandoc(text).split("\n\n"):
        lines = para.split("\n")
        if para.startswith("\b") or all(ln.startswith("    ") for ln in lines if ln.strip()):
            out.append(para)
            continue
        joined: list[str] = []
        for ln in lines:
            if joined and not re.match(r"\s*([*-] |\d+\. )", ln):
                joined[-1] += " " + ln.strip()
            else:
                joined.append(ln.rstrip())
        out.append("\n".join(joined))
    return "\n\n".join(out)


def _label(param: Any) -> str:
    names = [o for o in (*param.opts, *param.secondary_opts) if o.startswith("--")] or list(param.opts)
    return "/".join(names)


def _check_repeats(ctx: Any, order: list) -> None:
    counts = Counter(id(p) for p in order)
    for param in dict.fromkeys(order):
        if (counts[id(param)] > 1 and getattr(param, "param_type_name", "") == "option"
                and not param.multiple and not param.count and not param.is_eager):
            ctx.fail(f"option {_label(param)} given {counts[id(param)]} times; give it once")


def _display_type(param: Any, ctx: Any, original) -> str | None:
    if getattr(param, "is_flag", False):
        return None
    label = original(ctx)
    if label is None or (param.metavar is not None and getattr(param, "param_type_name", "") == "option"):
        return label
    dots = "..." if label.endswith("...") or label.startswith("<list[") else ""
    core = label.removesuffix("...")
    core = f"<{core[6:-2]}>" if core.startswith("<list[") else core
    if "|" in core:  # choices
        return core + dots
    if core.lower() in ("<str>", "<text>"):
        return (param.name or "value").upper() + dots
    return _TYPE_NAMES.get(core.lower(), core) + dots


class _Strict:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.help:
            self.help = reflow(self.help)

    def make_parser(self, ctx):
        parser = super().make_parser(ctx)
        parse = parser.parse_args

        def parse_args(args):
            opts, largs, order = parse(args)
            if not ctx.resilient_parsing:
                _check_repeats(ctx, order)
            return opts, largs, order

        parser.parse_args = parse_args
        return parser

    def format_help(self, ctx, formatter) -> None:
        for param in self.get_params(ctx):
            if "display_type_rich" not in vars(param):
                original = param.display_type_rich
                param.display_type_rich = lambda ctx, p=param, o=original: _display_type(p, ctx, o)
        super().format_help(ctx, formatter)


class Command(_Strict, TyperCommand):
    pass


class Group(_Strict, TyperGroup):
    pass


class App(typer.Typer):
    """``typer.Typer`` whose commands and groups are :class:`Command` and :class:`Group`."""

    def __init__(self, *args: Any, cls: type | None = None, **kwargs: Any) -> None:
        super().__init__(*args, cls=cls or Group, **kwargs)

    def command(self, *args: Any, cls: type | None = None, **kwargs: Any):
        return super().command(*args, cls=cls or Command, **kwargs)
