"""stvsr's own folder for weights and caches: ``$STVSR_HOME``, default ``~/.cache/stvsr``."""
from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "STVSR_HOME"


def stvsr_home(*parts: str) -> Path:
    """``$STVSR_HOME/<parts...>`` (default root ``~/.cache/stvsr``): ``weights``, ``cache/ptx``,
    ``cache/memory``."""
    root = os.environ.get(HOME_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "stvsr")
    return Path(root).joinpath(*parts)
