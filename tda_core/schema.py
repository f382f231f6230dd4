"""The config schema: tda_core/schemas/config.schema.yaml with what registry rows add to it (each study's block,
each model family's options), and a file holding it for Snakemake's `validate`. Imports only the registries'
rows (torch-free): tda_core.config validates with it and tda_core.spec reads its defaults."""
from __future__ import annotations

import copy
import functools
import hashlib
import json
from pathlib import Path

import yaml

from .errors import ConfigError

__all__ = ["SCHEMA_PATH", "config_schema", "config_schema_path"]

# Package data (pyproject.toml), so that a non-editable install validates too; the Snakefile uses it as well.
SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"


@functools.cache
def config_schema() -> dict:
    """The config schema: config.schema.yaml with each study's block schema that its row gives
    (tda_core/studies.py: `schema`) added to the experiment's properties, and each model family's options
    (tda_core/models/registry.py: `options`) to the `model` block's."""
    from .models.registry import MODELS
    from .studies import STUDIES

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    properties = schema["$defs"]["experiment"]["properties"]
    model = properties["model"]["properties"]
    for row in MODELS.values():
        for key, spec in (row.options or {}).items():
            if "default" in spec or model.get(key, spec) != spec:
                raise ConfigError(f"model '{row.name}': option '{key}' " + ("may have no default (its builder's "
                                  "default: a schema default would enter every config's hash)" if "default" in spec
                                  else "is declared differently by another model family or the schema"))
            model[key] = copy.deepcopy(spec)
    for row in STUDIES.values():
        if row.schema is not None:
            if row.name in properties:
                raise ConfigError(f"study '{row.name}': its block is in both {SCHEMA_PATH.name} and its row's schema")
            properties[row.name] = copy.deepcopy(row.schema)
    return schema


@functools.cache
def config_schema_path() -> str:
    """A file holding config_schema() for Snakemake's `validate`, which reads a path: config.schema.yaml itself when no
    row adds to it (no study's block schema, no model family's options), else the merged schema written once per
    content into the temporary folder."""
    import os
    import tempfile

    from .models.registry import MODELS
    from .studies import STUDIES

    if not any(row.options for row in MODELS.values()) and all(row.schema is None for row in STUDIES.values()):
        return str(SCHEMA_PATH)
    text = json.dumps(config_schema(), sort_keys=True)
    path = Path(tempfile.gettempdir()) / f"tda-bench-config-schema-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    if not path.is_file():
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)  # plans running at once each write a whole file
    return str(path)
