"""`distlmk config --explain`: every field of a config with its type, default and documentation,
read from the dataclasses' source (the comment on a field, or the string right after it)."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Literal

from distlmk.config.load import to_dict
from distlmk.config.types import SearchConfig


def field_docs(cls: type) -> dict[str, str]:
    """Each field's documentation, read from the class source: the string literal right after
    the field (CleanRL / tyro style) or else the comment on the field's line(s)."""
    import ast
    import inspect
    import io
    import textwrap
    import tokenize

    src = textwrap.dedent(inspect.getsource(cls))
    src_lines = src.splitlines()
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    body = ast.parse(src).body[0].body
    docs = {}
    for i, node in enumerate(body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        nxt = body[i + 1] if i + 1 < len(body) else None
        if isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant) \
                and isinstance(nxt.value.value, str):
            docs[node.target.id] = " ".join(nxt.value.value.split())
            continue
        lines = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments]
        n = node.lineno - 1  # else: the comment lines right above the field
        while not lines and n in comments and src_lines[n - 1].lstrip().startswith("#"):
            n -= 1
        if not lines:
            lines = [comments[k] for k in range(n + 1, node.lineno)]
        if lines:
            docs[node.target.id] = " ".join(lines)
    return docs


def explain(cls: type = None, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, doc) for every field of `cls` and its nested blocks, YAML spelling."""
    cls = cls or SearchConfig
    rows = []
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    default = cls()
    for f in dataclasses.fields(cls):
        key = prefix + ("lambda" if f.name == "lambda_" else f.name)
        tp = hints[f.name]
        value = getattr(default, f.name)
        if dataclasses.is_dataclass(tp):
            rows.append((key, "block", "", docs.get(f.name, "")))
            rows += explain(tp, key + ".")
            continue
        if isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):  # a list of blocks (a block field went above)
            value = [to_dict(v) for v in value]
        rows.append((key, _type_label(tp), json_default(value), docs.get(f.name, "")))
        inner = typing.get_args(tp)
        if typing.get_origin(tp) is list and inner and dataclasses.is_dataclass(inner[0]):
            rows += explain(inner[0], key + "[].")
    return rows


def _type_label(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(str(a) for a in typing.get_args(tp))
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def json_default(value: Any) -> str:
    import json

    return json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False)


def format_explain(cls: type = None) -> str:
    rows = explain(cls)
    width = max(len(r[0]) for r in rows)
    out = []
    for key, tp, default, doc in rows:
        if tp == "block":
            out.append(f"{key + ':':<{width + 1}}  {doc}")
        else:
            out.append(f"{key:<{width + 1}}  {doc}\n{'':<{width + 1}}  type {tp}, default {default}")
    return "\n".join(out)
