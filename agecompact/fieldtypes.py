"""Values read from JSON, TOML or msgpack checked against a dataclass's field annotations, so a wrong type
in a config file or a model header is one clear error instead of a crash far from where it was read."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


def _number(value: Any, integral: bool) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and (
        not integral or float(value).is_integer())


def _numbers(value: Any, integral: bool, length: int | None = None) -> bool:
    return isinstance(value, list | tuple) and (length is None or len(value) == length) and all(
        _number(x, integral) for x in value)


# annotation (as written, the part before "| None") -> (accepts, converts)
_KINDS: dict[str, tuple[Callable[[Any], bool], Callable[[Any], Any]]] = {
    "int": (lambda v: _number(v, True), int),
    "float": (lambda v: _number(v, False), float),
    "str": (lambda v: isinstance(v, str), str),
    "bool": (lambda v: isinstance(v, bool), bool),
    "dict[str, Any]": (lambda v: isinstance(v, dict), dict),
    "list[int]": (lambda v: _numbers(v, True), lambda v: [int(x) for x in v]),
    "list[float]": (lambda v: _numbers(v, False), lambda v: [float(x) for x in v]),
    "tuple[int, int]": (lambda v: _numbers(v, True, 2), lambda v: (int(v[0]), int(v[1]))),
}


def typed_fields(cls: type, values: dict[str, Any], error: type[Exception], what: str) -> dict[str, Any]:
    """``values`` (keys already known to be fields of ``cls``) checked and converted; ``error(message)``
    names the first field whose value does not fit, as ``<what> <field>``. ``cls`` must be defined with
    postponed annotations (``from __future__ import annotations``), so its field types are the strings above."""
    annotations = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for name, value in values.items():
        annotation = annotations[name]
        if value is None and "None" in annotation:
            out[name] = None
            continue
        accepts, convert = _KINDS[annotation.split("|")[0].strip()]
        if not accepts(value):
            raise error(f"{what} {name}: expected {annotation.replace(' | ', ' or ')}, got {value!r}")
        out[name] = convert(value)
    return out
