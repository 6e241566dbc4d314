"""The committed data/ is exactly what scripts/build_fuling_data.py makes from ../shared/data-sources."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "README.md"}


def test_build_script_reproduces_committed_data(shared_dir, tmp_path):
    sources = shared_dir / "data-sources"
    if not sources.is_dir():
        pytest.skip(f"{sources} absent: cannot rebuild the dataset")
    out = tmp_path / "data"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_fuling_data.py"), "--sources", str(sources), "--out", str(out)],
                   check=True, capture_output=True)
    assert _digests(out) == _digests(ROOT / "data")
