"""Names that become folder and file names under results_dir (experiments, methods, bundles)."""
from __future__ import annotations

import re

from .errors import ConfigError

SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def check_safe_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(f"{what} name {name!r} is not safe as a file name: use letters, digits, '_', '.', '-' "
                          "(not starting with '.', no '..')")
