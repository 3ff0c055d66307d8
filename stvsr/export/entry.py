"""The console scripts of the export side, ``stvsr-export`` and ``stvsr-bench``: the export extra
checked first (``install_hints.require_export``: one line naming what to install, exit 2), then the
command. Nothing here imports torch before that check."""
from __future__ import annotations

from stvsr.install_hints import require_export


def export_main() -> None:
    """``stvsr-export`` (``stvsr.export.cli``)."""
    require_export("stvsr-export")
    from stvsr.export.cli import main

    main()


def bench_main() -> None:
    """``stvsr-bench`` (``stvsr.bench.cli``)."""
    require_export("stvsr-bench")
    from stvsr.bench.cli import main

    main()
