"""Makes ``tests.helpers`` importable from every test folder (each folder's own helper module
has a name of its own; what several folders share lives in tests/helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
