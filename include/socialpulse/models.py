"""The SQL models in ``include/sql``: finding them, ordering them, building them.

One model per file, ``include/sql/<layer>/<name>.sql``, relation ``<layer>.<name>``. Each
file is a single pure SELECT preceded by a YAML header in a block comment::

    /* ---
    description: >
      What this model is, one row per what.
    columns:
      company_id: Registry id of the company.
    --- */
    select ...

Dependencies are read from the SQL: every schema-qualified reference to ``staging.x``,
``intermediate.x`` or ``marts.x`` is one (``raw.`` and ``ref.`` are sources). Every model is a
table by default; a header may say ``materialization: view``.

Only staging models read the sources (``raw``, ``ref``), and the staging layer is built as a
whole in one transaction (:func:`build_in_one_transaction`): it is the models run's snapshot
of the sources. A load that lands while the later models are built changes nothing of that
run; the next run sees it.

:func:`discover` runs at DAG parse time (one Airflow task per model), so it only reads files
and uses regular expressions and YAML: no DuckDB import here at module level or in it.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from socialpulse.config import SQL_DIR

if TYPE_CHECKING:
    from collections.abc import Iterable

    import duckdb

#: Model layers in build order; the directory name is the schema.
LAYERS = ("staging", "intermediate", "marts")
#: Default materialization per layer: staging too is a table, the run's frozen copy of the
#: sources (a view would read whatever a concurrent load left in raw at that moment).
MATERIALIZATIONS = {"staging": "table", "intermediate": "table", "marts": "table"}
#: The layer that reads the sources and is built in one transaction per models run.
SOURCE_LAYER = "staging"

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_HEADER = re.compile(
    r"\A\s*/\*[ \t]*---[ \t]*\r?\n(?P<yaml>.*?)^[ \t]*---[ \t]*\*/(?P<body>.*)\Z",
    re.DOTALL | re.MULTILINE,
)
# What is not SQL code: string literals, line and block comments (quoted identifiers are code).
_NOT_CODE = re.compile(r"'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/", re.DOTALL)


class ModelError(ValueError):
    """A model file is malformed or the models do not form a DAG. The message names the file."""


class ModelBuildError(RuntimeError):
    """Building a model in the warehouse failed. The message names the model and its file."""


@dataclass(frozen=True)
class Model:
    name: str
    layer: str
    path: Path
    #: the SELECT, without the header
    sql: str
    description: str
    #: documented output columns, name -> description, in header order
    columns: dict[str, str]
    #: qualified names of the models this one reads, sorted
    depends_on: tuple[str, ...]
    materialization: str  # 'view' | 'table'

    @property
    def qualified(self) -> str:
        return f"{self.layer}.{self.name}"

    def __hash__(self) -> int:  # columns is a dict: hash on identity fields only
        return hash((self.layer, self.name, self.path))


@functools.cache
def _reference_pattern(schemas: tuple[str, ...]) -> re.Pattern[str]:
    names = "|".join(schemas)
    # schema and name each bare or double-quoted: staging.x, "staging"."x", staging."x"
    return re.compile(
        rf"(?<![\w.\"])(?:\"(?P<qschema>{names})\"|(?P<schema>{names})(?![\w\"]))"
        r"\s*\.\s*(?:\"(?P<qname>[^\"]*)\"|(?P<name>[A-Za-z_][A-Za-z0-9_]*))",
        re.IGNORECASE,
    )


def references(sql: str, schemas: tuple[str, ...] = LAYERS) -> set[str]:
    """Qualified names (``schema.name``, lowercased) in ``sql``'s code (not in its comments
    or strings) whose schema is one of ``schemas``: by default the model layers.

    Quoted identifiers count too (``"staging"."stg_posts"``); a quoted name that is no
    model name stays as written, so :func:`discover` reports it as an unknown model.
    """
    code = _NOT_CODE.sub(" ", sql)
    pattern = _reference_pattern(tuple(schemas))
    return {
        f"{(m['schema'] or m['qschema']).lower()}.{(m['name'] or m['qname'] or '').lower()}"
        for m in pattern.finditer(code)
    }


def parse_model(path: Path, layer: str) -> Model:
    """Read one model file. Raises :class:`ModelError` naming the file when malformed."""
    name = path.stem
    if not _IDENTIFIER.match(name):
        raise ModelError(
            f"{path}: file name {name!r} is not a valid relation name "
            "(lowercase letters, digits and '_', not starting with a digit)"
        )
    if layer not in LAYERS:
        raise ModelError(f"{path}: layer {layer!r} is not one of {list(LAYERS)}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(f"{path}: cannot read model file: {exc.strerror}") from exc
    match = _HEADER.match(text)
    if match is None:
        raise ModelError(
            f"{path}: missing header: the file must start with a YAML block comment "
            "'/* --- ... --- */' holding description and columns"
        )
    header = _parse_header(path, match["yaml"])
    sql = match["body"].strip().rstrip(";").strip()
    if not sql:
        raise ModelError(f"{path}: no SQL after the header")
    if ";" in _NOT_CODE.sub(" ", sql):
        raise ModelError(f"{path}: a model is a single SELECT; found ';' inside the SQL")
    materialization = header.get("materialization", MATERIALIZATIONS[layer])
    if materialization not in ("view", "table"):
        raise ModelError(
            f"{path}: header 'materialization' must be 'view' or 'table', got {materialization!r}"
        )
    refs = references(sql)
    if f"{layer}.{name}" in refs:
        raise ModelError(f"{path}: model {layer}.{name} references itself (cycle)")
    return Model(
        name=name,
        layer=layer,
        path=path,
        sql=sql,
        description=header["description"],
        columns=header["columns"],
        depends_on=tuple(sorted(refs)),
        materialization=materialization,
    )


def _parse_header(path: Path, text: str) -> dict[str, Any]:
    try:
        # libyaml's safe loader where PyYAML has it: the models DAG parses every header at
        # parse time, and the pure-Python loader was a fifth of that (docs/benchmarks.md)
        doc = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except yaml.YAMLError as exc:
        raise ModelError(f"{path}: invalid header: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise ModelError(f"{path}: invalid header: expected a mapping with description and columns")
    unknown = sorted(set(doc) - {"description", "columns", "materialization"})
    if unknown:
        raise ModelError(f"{path}: invalid header: unknown key(s) {unknown}")
    description = doc.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ModelError(f"{path}: invalid header: 'description' is missing or empty")
    columns = doc.get("columns")
    if not isinstance(columns, dict) or not columns:
        raise ModelError(
            f"{path}: invalid header: 'columns' must map every output column to its description"
        )
    out: dict[str, str] = {}
    for col, desc in columns.items():
        if not isinstance(col, str) or not _IDENTIFIER.match(col):
            raise ModelError(f"{path}: invalid header: column name {col!r} is not an identifier")
        if not isinstance(desc, str) or not desc.strip():
            raise ModelError(f"{path}: invalid header: column {col!r} has no description")
        out[col] = " ".join(desc.split())
    doc["description"] = " ".join(description.split())
    doc["columns"] = out
    return doc


def discover(sql_dir: str | Path | None = None) -> list[Model]:
    """All models under ``sql_dir`` (default :data:`SQL_DIR`), dependencies first.

    The order is deterministic: among models whose dependencies are built, layer order then
    name. Raises :class:`ModelError` (a ``ValueError``) naming the file for a malformed
    header or file name, a reference to an unknown model, or a cycle.
    """
    root = Path(sql_dir) if sql_dir is not None else SQL_DIR
    if not root.is_dir():
        raise ModelError(f"{root}: SQL model directory does not exist")
    models: dict[str, Model] = {}
    for layer in LAYERS:
        layer_dir = root / layer
        if not layer_dir.is_dir():
            continue
        for path in sorted(layer_dir.glob("*.sql")):
            model = parse_model(path, layer)
            models[model.qualified] = model
    for model in models.values():
        for dep in model.depends_on:
            if dep not in models:
                raise ModelError(
                    f"{model.path}: model {model.qualified} references unknown model {dep!r}"
                )
    return _toposort(models)


def _sort_key(model: Model) -> tuple[int, str]:
    return (LAYERS.index(model.layer), model.name)


def _toposort(models: dict[str, Model]) -> list[Model]:
    remaining = {q: set(m.depends_on) for q, m in models.items()}
    dependents: dict[str, list[str]] = {q: [] for q in models}
    for q, deps in remaining.items():
        for dep in deps:
            dependents[dep].append(q)
    ready = [(_sort_key(models[q]), q) for q, deps in remaining.items() if not deps]
    heapq.heapify(ready)
    ordered: list[Model] = []
    while ready:
        _, q = heapq.heappop(ready)
        ordered.append(models[q])
        for d in dependents[q]:
            remaining[d].discard(q)
            if not remaining[d]:
                heapq.heappush(ready, (_sort_key(models[d]), d))
    if len(ordered) < len(models):
        stuck = {q for q in models if remaining[q]}
        cycle = _find_cycle(stuck, remaining)
        files = ", ".join(str(models[q].path) for q in cycle[:-1])
        raise ModelError(f"dependency cycle {' -> '.join(cycle)} (files: {files})")
    return ordered


def _find_cycle(stuck: set[str], remaining: dict[str, set[str]]) -> list[str]:
    """One cycle among models that could not be ordered, as a closed path a -> b -> a."""
    start = min(stuck)
    path = [start]
    seen = {start: 0}
    node = start
    while True:
        node = min(d for d in remaining[node] if d in stuck)
        if node in seen:
            return [*path[seen[node] :], node]
        seen[node] = len(path)
        path.append(node)


def build_model(con: duckdb.DuckDBPyConnection, model: Model) -> int:
    """``create or replace view|table <qualified> as <sql>`` in one transaction.

    Returns the number of rows of the built relation (for a view: the rows it returns now).
    Any failure is rolled back and re-raised as :class:`ModelBuildError` naming the model
    and its file.
    """
    return build_in_one_transaction(con, [model])[model.qualified]


def build_in_one_transaction(
    con: duckdb.DuckDBPyConnection, models: Iterable[Model]
) -> dict[str, int]:
    """Build ``models`` (in the order given) in a single transaction: all or none.

    Every model reads the database as it was when the transaction began (DuckDB's snapshot
    isolation), so a load committed meanwhile by another connection is not half seen.
    Returns rows per qualified name; a failure rolls all of them back and is re-raised as
    :class:`ModelBuildError` naming the model and its file.
    """
    counts: dict[str, int] = {}
    con.execute("begin transaction")
    model: Model | None = None
    try:
        for model in models:
            counts[model.qualified] = _create(con, model)
        con.execute("commit")
    except Exception as exc:
        with contextlib.suppress(Exception):
            con.execute("rollback")
        where = f"model {model.qualified} ({model.path})" if model is not None else "models"
        raise ModelBuildError(f"{where}: {exc}") from exc
    return counts


def _create(con: duckdb.DuckDBPyConnection, model: Model) -> int:
    kind = model.materialization
    other = "table" if kind == "view" else "view"
    existing = con.execute(
        "select table_type from information_schema.tables "
        "where table_schema = ? and table_name = ?",
        [model.layer, model.name],
    ).fetchone()
    if existing is not None and (existing[0] == "VIEW") != (kind == "view"):
        con.execute(f"drop {other} {model.qualified}")
    con.execute(f"create or replace {kind} {model.qualified} as\n{model.sql}")
    return int(con.execute(f"select count(*) from {model.qualified}").fetchone()[0])


def build_all(
    con: duckdb.DuckDBPyConnection, models: Iterable[Model] | None = None
) -> dict[str, int]:
    """Build ``models`` (default: :func:`discover`) in order: the staging layer in one
    transaction first, then every other model in its own. Returns rows per qualified name."""
    ordered = discover() if models is None else list(models)
    counts = build_in_one_transaction(con, [m for m in ordered if m.layer == SOURCE_LAYER])
    for m in ordered:
        if m.layer != SOURCE_LAYER:
            counts[m.qualified] = build_model(con, m)
    return counts
