"""Reading a notebook's ``parameters`` cell: names, typed literal defaults and help texts."""

from __future__ import annotations

import ast
import hashlib
import io
import json
import tokenize
from dataclasses import dataclass
from pathlib import Path

import nbformat

TAG = "parameters"


@dataclass(frozen=True)
class Parameter:
    """One parameter declared in a notebook's ``parameters`` cell."""

    name: str
    default: object
    help: str

    @property
    def type(self) -> type:
        return type(self.default)

    def accepts(self, value) -> bool:
        """Whether ``value`` may replace the default: same type, or an int where a float is declared."""
        expected = self.type
        if isinstance(value, bool) or expected is bool:
            return isinstance(value, bool) and expected is bool
        if expected is float:
            return isinstance(value, (int, float))
        return isinstance(value, expected)

    def describe(self) -> str:
        return f"{self.name}: {self.type.__name__} = {self.default!r}  # {self.help}"


def read(path: str | Path) -> nbformat.NotebookNode:
    """Load a notebook, with an error naming the file when it is missing or not a notebook."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"notebook {str(path)!r} does not exist")
    try:
        return nbformat.read(path, as_version=4)
    except Exception as exc:  # nbformat raises several unrelated types for a broken file
        raise ValueError(f"{str(path)!r} is not a readable Jupyter notebook: {exc}") from exc


def parameters_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """The code cells tagged ``parameters``."""
    return [c for c in nb.cells if c.cell_type == "code" and TAG in c.get("metadata", {}).get("tags", [])]


def declared_parameters(path: str | Path) -> dict[str, Parameter]:
    """The parameters of the notebook at ``path``, in order.

    The notebook must have exactly one cell tagged ``parameters`` holding only lines
    ``name = <literal>  # help``; anything else is an error naming the notebook and the line.
    """
    cells = parameters_cells(read(path))
    if len(cells) != 1:
        raise ValueError(f"{str(path)!r} has {len(cells)} cells tagged {TAG!r}; exactly one is required")
    found: dict[str, Parameter] = {}
    for number, line in enumerate(cells[0].source.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        code, comment = _split_comment(line)
        where = f"{str(path)!r}, parameters cell line {number} ({stripped!r})"
        try:
            (node,) = ast.parse(code.strip()).body
        except (SyntaxError, ValueError) as exc:
            raise ValueError(f"{where}: expected one 'name = literal  # help' assignment") from exc
        if not (isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None):
            raise ValueError(f"{where}: expected 'name = literal  # help'")
        target = node.targets[0] if isinstance(node, ast.Assign) else node.target
        if not isinstance(target, ast.Name):
            raise ValueError(f"{where}: the target must be a plain name")
        try:
            default = ast.literal_eval(node.value)
        except ValueError as exc:
            raise ValueError(f"{where}: the default must be a literal (number, string, bool, list)") from exc
        if not comment.strip():
            raise ValueError(f"{where}: add a trailing '# help' comment saying what {target.id!r} is")
        found[target.id] = Parameter(target.id, default, comment.strip())
    return found


def source_hash(path: str | Path) -> str:
    """SHA-256 of a notebook's cell types and sources (outputs and metadata ignored)."""
    nb = read(path)
    cells = [[c.cell_type, c.source] for c in nb.cells]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def _split_comment(line: str) -> tuple[str, str]:
    """(code, comment text) of one line, a ``#`` inside a string literal left in the code."""
    try:
        for token in tokenize.generate_tokens(io.StringIO(line).readline):
            if token.type == tokenize.COMMENT:
                return line[: token.start[1]], token.string.lstrip("#").strip()
    except tokenize.TokenError:
        pass
    return line, ""
