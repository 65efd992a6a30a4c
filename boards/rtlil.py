"""What the board flow reads of the RTLIL Amaranth emits: modules, their memories and cells.

Only Amaranth's layout is understood: one statement a line, a memory's attributes on the
lines before its ``memory`` declaration, a cell's ``parameter`` lines before its ``connect`` lines.
"""
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["Cell", "Memory", "modules", "cells", "memories", "rewrite_modules", "set_cell_parameters"]

_MODULE_START = "\nmodule "
_CELL = re.compile(r"^\s*cell (\$\w+) \S+\n((?:\s*parameter .*\n)*)((?:\s*connect .*\n)*)", re.M)
_PARAMETER = re.compile(r"parameter \\(\w+) (\S+)")
_MEMORY = re.compile(r"((?:^ *attribute .*\n)*)^ *memory width (\d+) size (\d+) (\S+) *$", re.M)
_ATTRIBUTE = re.compile(r"attribute \\(\S+) (.*)")


def _name(identifier: str) -> str:
    """An RTLIL identifier as Amaranth named it (public names lose their backslash)."""
    return identifier.removeprefix("\\")


@dataclass(frozen=True)
class Cell:
    kind: str                       # e.g. "$mul", "$memrd_v2"
    parameters: dict[str, str]      # values as RTLIL writes them, e.g. "8" or "2'00"
    connects: str                   # the cell's connect lines

    @property
    def memory(self) -> str:
        """The memory a ``$memrd_v2`` or ``$memwr_v2`` port accesses (its ``MEMID``, unquoted and unescaped)."""
        return _name(self.parameters["MEMID"].strip('"').replace("\\\\", "\\"))


@dataclass(frozen=True)
class Memory:
    name: str
    width: int
    depth: int
    attributes: dict[str, str]      # string values unquoted


def modules(text: str) -> Iterator[tuple[str, str]]:
    """Each module's name and text."""
    for module in text.split(_MODULE_START)[1:]:
        yield _name(module.split(None, 1)[0]), module


def rewrite_modules(text: str, rewrite: Callable[[str], str]) -> str:
    """``text`` with each module's text replaced by ``rewrite(module text)``."""
    head, *bodies = text.split(_MODULE_START)
    return _MODULE_START.join([head, *map(rewrite, bodies)])


def _cell(match: re.Match) -> Cell:
    kind, parameters, connects = match.groups()
    return Cell(kind, dict(_PARAMETER.findall(parameters)), connects)


def cells(text: str) -> Iterator[Cell]:
    """The cells of a module (or of every module, given a whole design)."""
    return map(_cell, _CELL.finditer(text))


def memories(module: str) -> Iterator[Memory]:
    """The memories a module declares (each accessed by separate ``$memrd_v2``/``$memwr_v2`` cells)."""
    for attributes, width, depth, name in _MEMORY.findall(module):
        values = {key: value.strip().removeprefix('"').removesuffix('"')
                  for key, value in _ATTRIBUTE.findall(attributes)}
        yield Memory(_name(name), int(width), int(depth), values)


def set_cell_parameters(module: str, parameters: Callable[[Cell], dict[str, str]]) -> str:
    """``module`` with each cell's parameters named in ``parameters(cell)`` set to the values given there."""
    def rewrite(match):
        declared = match.group(2)
        for name, value in parameters(_cell(match)).items():
            declared, found = re.subn(rf"(parameter \\{name} )\S+", lambda old: old.group(1) + value, declared)
            if not found:
                raise ValueError(f"A {match.group(1)} cell has no parameter {name}")
        return match.string[match.start():match.start(2)] + declared + match.string[match.end(2):match.end()]
    return _CELL.sub(rewrite, module)
