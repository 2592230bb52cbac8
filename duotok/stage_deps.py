"""DVC dependencies that follow the code: each stage depends on every ``duotok`` module its notebook imports.

Why: a stage that forgets a module it imports never re-runs after an edit there, and a stale number
gets reported as if it were current (CONVENTIONS.md; 545 such (stage, module) pairs were once counted
here). So the package part of every notebook stage's ``deps`` is *generated*, not hand-kept:

* start from ``notebooks/NAME.py`` of the stage's ``duotok notebook run NAME`` command — or, for a
  stage that runs another ``duotok SUBCOMMAND`` (``duotok tokens``), from what ``cli.py``'s
  ``cmd_SUBCOMMAND`` imports;
* follow every ``import`` of a ``duotok`` module, **including imports inside functions**: a lazy import
  runs as soon as the stage calls that function, and a static walk cannot tell which functions it calls,
  so it takes them all (a superset — an edit may re-run a stage that did not need it, never the reverse);
  importing ``a.b.c`` also runs ``a/__init__.py`` and ``a/b/__init__.py``, so those count too;
* except a package's lazy exports (a module-level ``__getattr__``, PEP 562): they run only for a name
  the module does not define itself, so they count for ``from pkg import name`` of such a name only —
  otherwise ``duotok/__init__.py``'s lazy ``DuoTok`` would make every stage depend on the tokenizer;
* add ``duotok/notebooks.py`` (the runner that executes every notebook) and what *it* imports (``duotok.timing``,
  which writes the stage's timing record: an output of the stage like any other);
* where the set covers every module of a package folder, write the folder (honest and shorter).

Other deps (``data``, ``models/…``, the notebook itself) are kept as written. ``duotok deps sync``
rewrites ``dvc.yaml`` in place (comments kept); ``duotok deps check`` — and a test — fail on drift.
"""

from __future__ import annotations

import ast
import functools
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from duotok.paths import project_root

PACKAGE = "duotok"
RUNNER = "duotok/notebooks.py"
CLI = "duotok/cli.py"
_NOTEBOOK_RUN = re.compile(r"notebook run\s+([\w\-]+)")
_CLI_RUN = re.compile(r"(?:^|&&|;)\s*duotok\s+(?!notebook\b)([a-z_]+)")


def module_file(module: str, root: Path) -> Path | None:
    """The file that defines ``module`` (``a.b`` → ``a/b.py`` or ``a/b/__init__.py``), if any."""
    path = root.joinpath(*module.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


@dataclass(frozen=True)
class ModuleImports:
    """What a file imports: ``always`` (anywhere but its lazy ``__getattr__``), ``lazy_exports`` (what its
    module-level ``__getattr__`` imports) and ``defined`` (the names it binds at module level)."""

    always: frozenset[str]
    lazy_exports: frozenset[str]
    defined: frozenset[str]


def _imports_in(nodes: Iterable[ast.AST], package: list[str], root: Path) -> set[str]:
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([module] if module else []))
            if module.split(".")[0] != PACKAGE:
                continue
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names if module_file(f"{module}.{a.name}", root)}
    return found


def _bound_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _parse(path: Path) -> ast.Module:
    stat = path.stat()
    return _parse_cached(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=1024)
def _parse_cached(path: Path, mtime_ns: int, size: int) -> ast.Module:
    """Parsed once per file version: a check walks each module once per stage that reaches it."""
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def module_imports(path: Path, root: Path) -> ModuleImports:
    """Every ``duotok`` module ``path`` imports (module level or inside functions), its lazy exports apart.

    ``from duotok.x import y`` counts ``duotok.x`` and, when ``y`` is itself a module, ``duotok.x.y``;
    relative imports are resolved against ``path``'s package."""
    tree = _parse(path)
    package = list(path.relative_to(root).with_suffix("").parts[:-1])
    lazy_fn = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "__getattr__"]
    lazy_nodes = {id(n) for fn in lazy_fn for n in ast.walk(fn)}
    always = _imports_in((n for n in ast.walk(tree) if id(n) not in lazy_nodes), package, root)
    lazy = _imports_in((n for fn in lazy_fn for n in ast.walk(fn)), package, root)
    return ModuleImports(frozenset(always), frozenset(lazy), frozenset(_bound_names(tree)))


def imported_modules(path: Path, root: Path) -> set[str]:
    """The ``duotok`` modules that running ``path`` may import, a lazy export counted where it is asked for:
    ``from pkg import name`` of a name ``pkg`` does not bind itself runs ``pkg.__getattr__``."""
    tree = _parse(path)
    package = list(path.relative_to(root).with_suffix("").parts[:-1])
    found = set(module_imports(path, root).always)
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        module = node.module or ""
        if node.level:
            module = ".".join(package[: len(package) - (node.level - 1)] + ([module] if module else []))
        file = module_file(module, root) if module.split(".")[0] == PACKAGE else None
        if file is None:
            continue
        target = module_imports(file, root)
        if target.lazy_exports and any(a.name not in target.defined and not module_file(f"{module}.{a.name}", root)
                                       for a in node.names):
            found |= target.lazy_exports
    return found


def _files_of(modules: Iterable[str], root: Path) -> list[Path]:
    """The files that importing ``modules`` runs (``a.b.c`` runs a/__init__.py, a/b/__init__.py, a/b/c.py)."""
    files = []
    for module in modules:
        parts = module.split(".")
        files += [f for i in range(1, len(parts) + 1) if (f := module_file(".".join(parts[:i]), root))]
    return files


def import_closure(start: Path | Iterable[Path], root: Path) -> set[Path]:
    """The ``duotok`` files that running ``start`` (a file or several) can execute through imports."""
    seen: set[Path] = set()
    todo = [start] if isinstance(start, Path) else list(start)
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += [f for f in _files_of(imported_modules(path, root), root) if f not in seen]
    package_dir = root / PACKAGE
    return {p for p in seen if package_dir in p.parents}


def collapse_folders(files: Iterable[str], root: Path) -> list[str]:
    """Sorted deps with every package folder whose modules are all in ``files`` written as the folder."""
    wanted = set(files)
    out = set(wanted)
    folders = sorted({str(Path(f).parent) for f in wanted}, key=lambda d: d.count("/"))
    for folder in folders:
        if folder == PACKAGE:
            continue  # never the whole package: that would re-run everything on any edit
        members = {str(p.relative_to(root)) for p in (root / folder).rglob("*.py")}
        if members and members <= wanted and not any(d == folder or folder.startswith(d + "/")
                                                     for d in out if not d.endswith(".py")):
            out = {d for d in out if not (d == folder or d.startswith(folder + "/"))} | {folder}
    return sorted(out)


@dataclass(frozen=True)
class EntryPoints:
    """What a stage's ``cmd`` runs: notebooks (``duotok notebook run NAME``) and other ``duotok`` subcommands."""

    notebooks: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.notebooks or self.commands)


def stage_entry_points(body: Mapping[str, Any]) -> EntryPoints:
    """The notebooks and ``duotok`` subcommands a stage body's ``cmd`` runs."""
    cmd = body.get("cmd", "")
    cmd = " ".join(cmd) if isinstance(cmd, list) else " ".join(str(cmd).split())
    return EntryPoints(tuple(_NOTEBOOK_RUN.findall(cmd)), tuple(_CLI_RUN.findall(cmd)))


def _command_imports(command: str, root: Path) -> set[str]:
    """The ``duotok`` modules ``duotok COMMAND`` imports: cli.py's own plus those of ``cmd_COMMAND``."""
    cli = root / CLI
    tree = _parse(cli)
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == f"cmd_{command}"]
    if not funcs:
        raise ValueError(f"dvc.yaml runs `duotok {command}`, but {cli} has no cmd_{command}")
    package = list(Path(CLI).with_suffix("").parts[:-1])
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    return _imports_in([*top, *ast.walk(funcs[0])], package, root)


def code_deps(entry: EntryPoints, root: Path) -> list[str]:
    """The generated ``duotok`` deps of a stage that runs ``entry``."""
    starts: list[Path] = []
    for name in entry.notebooks:
        source = root / "notebooks" / f"{name}.py"
        if not source.is_file():
            raise FileNotFoundError(f"{source}: the notebook a dvc.yaml stage runs does not exist")
        starts.append(source)
    if entry.notebooks and (root / RUNNER).is_file():
        starts.append(root / RUNNER)   # the runner itself and what it imports
    for command in entry.commands:
        starts += _files_of(_command_imports(command, root), root)
    files = {str(p.relative_to(root)) for p in import_closure(starts, root)}
    if entry.commands:
        files.add(CLI)
    return collapse_folders(files, root)


def _dep_name(dep: Any) -> str:
    return str(next(iter(dep))) if isinstance(dep, Mapping) else str(dep)


def _is_code(dep: str) -> bool:
    return dep == PACKAGE or dep.startswith(PACKAGE + "/")


@dataclass
class Drift:
    """What differs between a stage's ``duotok`` deps in dvc.yaml and the generated ones."""

    stage: str
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"imports but does not depend on {', '.join(self.missing)}")
        if self.extra:
            parts.append(f"depends on {', '.join(self.extra)}, which it does not import")
        return f"stage {self.stage}: " + "; ".join(parts)


def _stage_bodies(dvc: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    for name, stage in (dvc.get("stages") or {}).items():
        yield name, stage["do"] if isinstance(stage, Mapping) and "do" in stage else stage


def check(root: Path | None = None) -> list[Drift]:
    """Stages whose ``duotok`` deps differ from the generated ones (empty = in sync)."""
    import yaml

    root = root or project_root()
    dvc = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))
    drifts = []
    for name, body in _stage_bodies(dvc):
        entry = stage_entry_points(body)
        if not entry:
            continue
        written = {d for d in map(_dep_name, body.get("deps") or []) if _is_code(d)}
        wanted = set(code_deps(entry, root))
        if written != wanted:
            drifts.append(Drift(name, sorted(wanted - written), sorted(written - wanted)))
    return drifts


def sync(root: Path | None = None) -> list[str]:
    """Rewrite the ``duotok`` deps of every notebook stage in dvc.yaml (comments and order of the other
    deps kept; code deps follow them, sorted). Returns the names of the stages that changed."""
    from ruamel.yaml import YAML

    root = root or project_root()
    path = root / "dvc.yaml"
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 110  # the file's own line length: long flow lists wrap as before
    yaml.indent(mapping=2, sequence=4, offset=2)
    dvc = yaml.load(path.read_text(encoding="utf-8"))
    changed = []
    for name, body in _stage_bodies(dvc):
        entry = stage_entry_points(body)
        if not entry:
            continue
        deps = body.get("deps")
        if deps is None:
            continue
        current = [d for d in deps if _is_code(_dep_name(d))]
        wanted = code_deps(entry, root)
        if [_dep_name(d) for d in current] == wanted:
            continue
        keep = [d for d in deps if not _is_code(_dep_name(d))]
        deps.clear()
        deps.extend(keep + wanted)
        changed.append(name)
    if changed:
        buffer = io.StringIO()
        yaml.dump(dvc, buffer)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
        tmp.replace(path)
    return changed
