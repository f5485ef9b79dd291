"""Where the checkout is: the one definition of the repo root and its ``manifests/`` folder.

The package lives in the checkout (an editable install), so the repo root is the parent of
``lab_app/``. Code that reads the repo's files (manifest loading, the kind cluster config,
image builds) imports these instead of counting ``parents[...]`` from its own location,
which breaks silently when a module moves. :func:`lab_app.notebook.repo_root` adds a
fallback to the working directory for notebooks run from elsewhere.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFESTS_DIR = REPO_ROOT / "manifests"
