"""Check that what docs/CONTRACTS.md quotes still exists: `make lint` runs it.

    python scripts/check_contracts_doc.py [DOC.md ...]

Every backticked span of the document is searched for
  - paths (`robot_ssl/io/session.py`, `pinhole/`, `pyproject.toml`): the file or folder
    exists, from the repository's root (option spellings such as `--x/--no-x` are not paths);
  - dotted names (`robot_ssl.io.streams.STREAMS`, `pinhole.Pinhole`, `os.replace`): they
    import, or name a member of a class of the project (`Checkpoint.load`);
  - calls (`load_predictor(path, num_threads=1)`, `.save(path)`, `Record.of(...)`): the name
    is defined in robot_ssl, sim, firmware_bridge or pinhole (module level, class member or
    an attribute set in a method), and every parameter the call names (`path`,
    `num_threads=`) is a parameter of one definition of that name.
Bare names (`Predictor`, `format`), string literals, placeholders (`...`, `..`) and
positional type names (`decide(Situation)`) are not checked: they are prose or file
contents. A dotted name whose first part is neither importable nor a class of the
project (`record.speed`: an instance) is not checked either.

Prints one line per reference that does not resolve (`DOC:LINE: `span`: why`) and exits 1,
0 when all resolve, 2 when a document cannot be read.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("robot_ssl", "sim", "firmware_bridge", "pinhole")
DEFAULT_DOC = ROOT / "docs" / "CONTRACTS.md"
FILE_SUFFIXES = (".py", ".md", ".toml", ".json", ".yaml", ".h5", ".onnx", ".pt", ".png")

_STRING = re.compile(r"\"[^\"]*\"|'[^']*'")
_PATH = re.compile(r"(?<![\w.-])(?:\w[\w.-]*/)+(?:[\w.-]+)?|(?<![\w./-])\w[\w-]*\.(?:toml|md)\b")
_CALL = re.compile(r"(?<![\w\]])(\.?[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\(")
_DOTTED = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?![\w(])")
_IDENT = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class Definition:
    """A name defined in the project: `qualname` in `module` (`owner` its class, if any)."""

    module: str
    qualname: str
    owner: str | None = None


@dataclass
class Index:
    """Every name the project's packages define, from their source (no import needed)."""

    by_name: dict[str, list[Definition]] = field(default_factory=lambda: defaultdict(list))
    classes: dict[str, list[Definition]] = field(default_factory=lambda: defaultdict(list))
    members: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, d: Definition, name: str) -> None:
        self.by_name[name].append(d)
        if d.owner is not None:
            self.members[(d.module, d.owner)].add(name)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def build_index(packages: tuple[str, ...] = PACKAGES) -> Index:
    """Names defined at module level, in class bodies and as `self.X = ...` in methods."""
    index = Index()
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = module_name(path)
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            _index_body(index, module, tree.body, prefix="", owner=None)
    return index


def _targets(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def _index_body(index: Index, module: str, body: list, prefix: str, owner: str | None) -> None:
    for node in body:
        if isinstance(node, ast.ClassDef):
            qual = prefix + node.name
            index.add(Definition(module, qual, owner), node.name)
            index.classes[node.name].append(Definition(module, qual, owner))
            _index_body(index, module, node.body, qual + ".", qual)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            index.add(Definition(module, prefix + node.name, owner), node.name)
            if owner is not None:
                for attr in _self_attributes(node):
                    index.add(Definition(module, f"{owner}.{attr}", owner), attr)
        else:
            for name in _targets(node):
                index.add(Definition(module, prefix + name, owner), name)


def _self_attributes(method: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[str]:
    for node in ast.walk(method):
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for t in targets:
            if (
                isinstance(t, ast.Attribute)
                and isinstance(t.value, ast.Name)
                and t.value.id == "self"
            ):
                yield t.attr


def load(d: Definition) -> object | None:
    """The object a definition names, or None (an instance attribute, an import failure)."""
    try:
        obj: object = importlib.import_module(d.module)
        for part in d.qualname.split("."):
            obj = getattr(obj, part)
    except Exception:
        return None
    return obj


def parameters(obj: object) -> tuple[list[str], bool] | None:
    """(parameter names in order, accepts any keyword) of a callable; None when unreadable."""
    try:
        sig = inspect.signature(obj)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    names = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return names, any(p.kind == p.VAR_KEYWORD for p in params)


def split_arguments(text: str) -> list[str]:
    """Top-level comma-separated pieces of an argument list (brackets nest)."""
    pieces, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            pieces.append(text[start:i])
            start = i + 1
    pieces.append(text[start:])
    return [p.strip() for p in pieces if p.strip()]


def argument_names(args: str) -> list[str]:
    """The parameter names a quoted call spells: `name`, `name=...`, `name: type`."""
    names = []
    for piece in split_arguments(args):
        m = re.match(r"([A-Za-z_]\w*)\s*(=|:|\[|$)", piece)
        if m is None or piece.startswith("..."):
            continue
        name = m.group(1)
        if m.group(2) in ("", "[") and name[0].isupper():
            continue  # a type standing for the argument: `decide(Situation)`
        names.append(name)
    return names


def closing(text: str, open_at: int) -> int:
    """Index of the parenthesis closing the one at `open_at` (len(text) if none)."""
    depth = 0
    for i in range(open_at, len(text)):
        depth += text[i] == "("
        depth -= text[i] == ")"
        if depth == 0:
            return i
    return len(text)


class Checker:
    """Resolves the references of one document against the repository."""

    def __init__(self, index: Index) -> None:
        self.index = index

    def check_span(self, span: str) -> list[str]:
        span = _STRING.sub('""', span)
        problems = [*self._check_paths(span)]
        for m in _CALL.finditer(span):
            end = closing(span, m.end() - 1)
            problems += self._check_call(m.group(1), span[m.end() : end])
        for m in _DOTTED.finditer(span):
            if not m.group(1).endswith(FILE_SUFFIXES):
                problems += self._check_dotted(m.group(1))
        return problems

    def _check_paths(self, span: str) -> Iterator[str]:
        for m in _PATH.finditer(span):
            path = m.group(0)
            if not (ROOT / path).exists():
                yield f"no file or folder {path}"

    def _check_dotted(self, name: str) -> list[str]:
        head, *rest = name.split(".")
        if _importable(head):
            return [] if _resolve_import(name) is not None else [f"{name} does not import"]
        if head in self.index.classes:
            return [] if self._member_of_class(head, rest[0]) else [f"{head} has no {rest[0]}"]
        return []  # an instance (`record.speed`): not checkable

    def _member_of_class(self, cls_name: str, member: str) -> bool:
        for d in self.index.classes[cls_name]:
            if member in self.index.members[(d.module, d.qualname)]:
                return True
            cls = load(d)
            if cls is not None and (
                hasattr(cls, member) or any(member in a for a in _annotations(cls))
            ):
                return True
        return False

    def _definitions(self, name: str) -> tuple[list[object], str | None]:
        """The objects a (dotted, or leading-dot) call name may mean, or why there is none."""
        name = name.lstrip(".")
        head, *rest = name.split(".")
        if rest and _importable(head):
            obj = _resolve_import(name)
            return ([obj], None) if obj is not None else ([], f"{name} does not import")
        if rest:
            if head not in self.index.classes:
                return [], None  # a method of an instance: not checkable
            if not self._member_of_class(head, rest[0]):
                return [], f"{head} has no {rest[0]}"
            objs = [getattr(load(d), rest[0], None) for d in self.index.classes[head]]
            return [o for o in objs if o is not None], None
        defs = self.index.by_name.get(name, [])
        if not defs:
            return [], f"{name} is defined nowhere in {', '.join(PACKAGES)}"
        return [o for o in map(load, defs) if o is not None], None

    def _check_call(self, name: str, args: str) -> list[str]:
        objs, why = self._definitions(name)
        if why is not None:
            return [why]
        wanted = argument_names(args)
        if not wanted or not objs:
            return []
        signatures = [s for s in map(parameters, objs) if s is not None]
        if not signatures:
            return []
        for names, any_keyword in signatures:
            if any_keyword or set(wanted) <= set(names):
                return []
        best = min(signatures, key=lambda s: len(set(wanted) - set(s[0])))
        missing = ", ".join(w for w in wanted if w not in best[0])
        return [f"{name.lstrip('.')} has no parameter {missing} (has: {', '.join(best[0])})"]


def _annotations(cls: object) -> list[dict[str, object]]:
    """The annotations of a class and its bases (dataclass fields without a default)."""
    return [
        vars(c)["__annotations__"]
        for c in getattr(cls, "__mro__", ())
        if "__annotations__" in vars(c)
    ]


def _importable(head: str) -> bool:
    try:
        importlib.import_module(head)
    except ImportError:
        return False
    return True


def _resolve_import(name: str) -> object | None:
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:]:
            if not hasattr(obj, part):
                return None
            obj = getattr(obj, part)
        return obj
    return None


def spans(text: str) -> Iterator[tuple[int, str]]:
    """(line, content) of every `backticked` span; spans may cross a line break."""
    for m in re.finditer(r"`([^`]+)`", text):
        yield text.count("\n", 0, m.start()) + 1, m.group(1)


def check_document(path: Path, checker: Checker) -> list[str]:
    text = path.read_text(encoding="utf-8")
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return [
        f"{shown}:{line}: `{' '.join(span.split())}`: {problem}"
        for line, span in spans(text)
        for problem in checker.check_span(span)
    ]


def main(argv: list[str]) -> int:
    docs = [Path(a).resolve() for a in argv] or [DEFAULT_DOC]
    for doc in docs:
        if not doc.is_file():
            print(f"check_contracts_doc: no such document: {doc}", file=sys.stderr)
            return 2
    sys.path.insert(0, str(ROOT))
    checker = Checker(build_index())
    problems = [p for doc in docs for p in check_document(doc, checker)]
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
