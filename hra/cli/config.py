"""`hra config schema|check`: the configuration reference and the validation of config files."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from hra.cli.common import ConfigArg, _console, cli_errors

config_app = typer.Typer(rich_markup_mode=None, help="Show the configuration schema and validate configuration files.", no_args_is_help=True)

class SchemaFormat(str, enum.Enum):
    json = "json"
    markdown = "markdown"


@config_app.command("schema")
def config_schema_command(
    fmt: Annotated[SchemaFormat, typer.Option("--format", "-f", help="json: the JSON schema; markdown: "
                                              "the reference tables of the README.")] = SchemaFormat.json,
) -> None:
    """Print the JSON schema of the run configuration (every key, type, default and unit)."""
    with cli_errors():
        from hra.config import config_json_schema

        schema = config_json_schema()
        if fmt == SchemaFormat.json:
            typer.echo(json.dumps(schema, indent=2))
        else:
            typer.echo(schema_markdown(schema))


_INPUT_SECTIONS = ("source", "ground_motion", "exposure", "fragility")


def _input_paths(cfg) -> list[tuple[str, Path]]:
    """(key, resolved path) of every file or directory an input section refers to."""
    out: list[tuple[str, Path]] = []

    def walk(obj, prefix: str) -> None:
        from pydantic import BaseModel

        for name in type(obj).model_fields:
            value = getattr(obj, name)
            key = f"{prefix}.{name}"
            if isinstance(value, Path):
                out.append((key, cfg.resolve(value)))
            elif isinstance(value, BaseModel):
                walk(value, key)

    for section in _INPUT_SECTIONS:
        walk(getattr(cfg, section), section)
    return out


@config_app.command("check")
def config_check_command(
    config: ConfigArg,
    read_inputs: Annotated[bool, typer.Option("--read-inputs", help="Also read and validate the input files "
                                              "(rates, exposure, fragility, model tables).")] = False,
) -> None:
    """Validate a configuration file and print a short summary (exit 2 when invalid)."""
    with cli_errors():
        from rich.table import Table

        from hra.config import ConfigError, load_config

        cfg = load_config(config)
        missing = [(k, p) for k, p in _input_paths(cfg) if not p.exists()]
        if missing:
            lines = [f"invalid configuration in {config}:"]
            lines += [f"  - key [{k}]: {p} does not exist; fix: correct the path (relative paths are taken "
                      f"from the directory of {Path(config).name})" for k, p in missing]
            raise ConfigError("\n".join(lines))
        t = Table(title=f"{config}: valid", title_justify="left", show_header=False)
        t.add_column("key", style="bold")
        t.add_column("value")
        r = cfg.run
        t.add_row("years", f"{r.years[0]}-{r.years[-1]} ({len(r.years)})" if len(r.years) > 1 else str(r.years[0]))
        t.add_row("realisations", f"{r.realisations} (seed {r.seed})")
        t.add_row("quantiles", ", ".join(f"{q:g}" for q in r.quantiles))
        if cfg.source.forecast is not None:
            t.add_row("source", f"forecast {cfg.resolve(cfg.source.forecast)}")
        else:
            mm = cfg.source.magnitude.m_max
            t.add_row("source", f"{cfg.resolve(cfg.source.rates)}; m_min {cfg.source.m_min:g}, "
                      f"Mmax {', '.join(f'{b.value:g}' for b in mm)}")
        if getattr(cfg, "model", None):
            t.add_row("model preset", cfg.model)
        t.add_row("ground motion", cfg.ground_motion.model)
        t.add_row("exposure", str(cfg.resolve(cfg.exposure.buildings)))
        fr = cfg.fragility
        frag_model = getattr(fr, "model", None)
        t.add_row("fragility", str(frag_model) if frag_model else str(cfg.resolve(fr.curves)))
        outs = [str(cfg.resolve(p)) for p in (cfg.output.path, cfg.output.csv) if p is not None]
        t.add_row("output", (", ".join(outs) or "none (results only returned)")
                  + (" (overwrite)" if cfg.output.overwrite else ""))
        c = cfg.compute
        workers = f"{c.n_workers} worker(s)" + (" (the CPU cores)" if c.workers is None else "")
        where = f"dask scheduler {c.scheduler}" if c.scheduler else f"{c.executor}, {workers}"
        t.add_row("compute", f"{where}, {c.chunk_buildings} buildings per task")
        if read_inputs:
            from hra.chain import prepare

            prep = prepare(cfg)
            t.add_row("buildings", f"{prep.buildings.n:,}")
            t.add_row("source cells", f"{prep.rates.x.size:,}, {len(prep.rates.branches)} branch(es)")
            t.add_row("sites", f"{len(prep.sites)} (zone, wierde) combinations")
            t.add_row("logic tree", f"{prep.tree.n_combinations:,} branch combinations")
        t.add_row("config sha256", cfg.sha256()[:16] + "...")
        _console().print(t)



# ------------------------------------------------------------------------------------------
# schema -> markdown (the config reference of the README)
# ------------------------------------------------------------------------------------------


def _deref(schema: dict, node: dict) -> dict:
    ref = node.get("$ref")
    if ref:
        return schema["$defs"][ref.rsplit("/", 1)[-1]]
    return node


def _type_str(schema: dict, node: dict) -> str:
    if "anyOf" in node:
        parts = [_type_str(schema, n) for n in node["anyOf"]]
        return " or ".join("none" if p == "null" else p for p in parts)
    if "const" in node:
        return json.dumps(node["const"])
    if "enum" in node:
        return " \\| ".join(json.dumps(v) for v in node["enum"])
    if "$ref" in node:
        d = _deref(schema, node)
        return "{" + ", ".join(f"`{k}`" for k in d.get("properties", {})) + "}"
    t = node.get("type")
    if t == "object" and isinstance(node.get("additionalProperties"), dict):
        return "{key = " + _type_str(schema, node["additionalProperties"]) + "}"
    if t == "array":
        return "list of " + _type_str(schema, node.get("items", {}))
    base = {"integer": "int", "number": "float", "string": "string", "boolean": "bool", "null": "null"}.get(t, str(t))
    if node.get("format") == "path":
        base = "path"
    lims = []
    for k, sym in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if k in node:
            lims.append(f"{sym} {node[k]:g}")
    return base + (" " + ", ".join(lims) if lims else "")


def _default_str(name: str, node: dict, required: set[str], factory: dict | None = None) -> str:
    if name in required:
        return "required"
    if "default" not in node:
        if factory and name in factory:
            return "`" + json.dumps(factory[name]) + "`"
        return ""
    d = node["default"]
    if d is None:
        return "none"
    return "`" + (json.dumps(d) if not isinstance(d, str) else json.dumps(d)) + "`"


def _factory_defaults(model=None) -> dict[str, dict[str, Any]]:
    """Defaults given by ``default_factory`` (absent from the JSON schema), by model title and key."""
    from pydantic import BaseModel

    from hra.config import Config

    out: dict[str, dict[str, Any]] = {}
    seen: set[type] = set()

    def walk(cls) -> None:
        if cls in seen:
            return
        seen.add(cls)
        for name, f in cls.model_fields.items():
            if f.default_factory is not None:
                try:
                    v = f.default_factory()
                    v = v.model_dump(mode="json") if isinstance(v, BaseModel) else \
                        [i.model_dump(mode="json") if isinstance(i, BaseModel) else i for i in v] \
                        if isinstance(v, list) else v
                    out.setdefault(cls.__name__, {})[name] = v
                except Exception:  # pragma: no cover - a factory that needs arguments
                    pass
            for t in _model_types(f.annotation):
                walk(t)

    walk(model or Config)
    return out


def _model_types(annotation) -> list[type]:
    import typing

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [t for a in typing.get_args(annotation) for t in _model_types(a)]


def schema_markdown(schema: dict) -> str:
    """Markdown tables (one per TOML section) of every key: type and range, default, description."""
    lines: list[str] = []
    factory = _factory_defaults()

    def table(title: str, d: dict, skip: tuple[str, ...] = ()) -> list[tuple[str, dict]]:
        nested: list[tuple[str, dict]] = []
        lines.extend([f"#### `{title}`", ""])
        if d.get("description"):
            lines.extend([d["description"].strip(), ""])
        lines.extend(["| key | type | default | description |", "|---|---|---|---|"])
        req = set(d.get("required", []))
        for name, node in d.get("properties", {}).items():
            if name in skip:
                continue
            target = _deref(schema, node)
            refs = [m for m in node.get("anyOf", []) if "$ref" in m]
            optional = len(refs) == 1 and any(m.get("type") == "null" for m in node.get("anyOf", []))
            if optional:  # an optional section ([source.magnitude]): its own table below
                target = _deref(schema, refs[0])
            if ("$ref" in node or optional) and "properties" in target and target.get("title", "").endswith("Section"):
                nested.append((f"{title.strip('[]')}.{name}", target))
                desc = (node.get("description") or "").replace("|", "\\|").replace("\n", " ")
                lines.append(f"| `{name}` | table `[{title.strip('[]')}.{name}]`{' or none' if optional else ''} | "
                             f"{'required' if name in req else ('none' if optional else '')} | "
                             f"{desc + ' ' if optional and desc else ''}see below |")
                continue
            desc = (node.get("description") or "").replace("|", "\\|").replace("\n", " ")
            dflt = _default_str(name, node, req, factory.get(d.get("title", "")))
            if dflt.startswith("`{") and "$ref" in node:
                dflt = "(all defaults)"
            lines.append(f"| `{name}` | {_type_str(schema, node)} | {dflt} | {desc} |")
        lines.append("")
        return nested

    def is_section(n: dict) -> bool:
        return ("$ref" in n or "discriminator" in n or "properties" in n
                or any(is_section(m) for m in n.get("anyOf", []) + n.get("oneOf", [])))

    top = {k: n for k, n in schema["properties"].items() if k not in ("base_dir", "source_file") and not is_section(n)}
    if top:  # top-level keys that are not sections (the model preset)
        lines.extend(["#### top-level keys", "", "| key | type | default | description |", "|---|---|---|---|"])
        for name, p in top.items():
            desc = (p.get("description") or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| `{name}` | {_type_str(schema, p)} | {_default_str(name, p, set(schema.get('required', [])))} "
                         f"| {desc} |")
        lines.append("")
    for section, node in schema["properties"].items():
        if section in ("base_dir", "source_file") or section in top:
            continue
        variants = node.get("oneOf") or node.get("anyOf")
        if variants and "discriminator" in node:
            key = node["discriminator"]["propertyName"]
            for v in variants:
                d = _deref(schema, v)
                val = d["properties"][key].get("const") or d["properties"][key].get("enum", ["?"])[0]
                title = f"[{section}] {key} = \"{val}\""
                lines.extend([f"#### `{title}`", ""])
                if d.get("description"):
                    lines.extend([d["description"].strip(), ""])
                lines.extend(["| key | type | default | description |", "|---|---|---|---|"])
                req = set(d.get("required", []))
                for name, p in d.get("properties", {}).items():
                    if name == key:
                        lines.append(f"| `{name}` | {json.dumps(val)} | required | Selects this model. |")
                        continue
                    desc = (p.get("description") or "").replace("|", "\\|").replace("\n", " ")
                    dflt = _default_str(name, p, req, factory.get(d.get("title", "")))
                    lines.append(f"| `{name}` | {_type_str(schema, p)} | {dflt} | {desc} |")
                lines.append("")
            continue
        pending = table(f"[{section}]", _deref(schema, node))
        while pending:
            title, d = pending.pop(0)
            pending.extend(table(f"[{title}]", d))
    return "\n".join(lines).rstrip() + "\n"
