"""Run the benchmarks from a checkout: ``python benchmarks/run.py [--quick] [...]`` (same as stvsr-bench)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stvsr.bench.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
