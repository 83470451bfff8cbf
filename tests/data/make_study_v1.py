"""Make tests/data/study-v1: a tiny study folder as a given cnnlab version writes it.

    python tests/data/make_study_v1.py [OUT]

Run it with the cnnlab to freeze on the path (the folder committed here was made by the
version before the typed-records refactor, commit 1033250, with PYTHONPATH pointing at
that commit's src/). It trains variant 'small' of tests/data/study-v1.toml (one seed, one
epoch on the learnable fake MNIST of tests/conftest.py) and leaves variant 'wider'
unrun, so a later version can show that it reads the folder, keeps the run ids and
resumes without training 'small' again (tests/test_study_compat.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from conftest import write_learnable_mnist  # noqa: E402

STUDY = HERE / "study-v1.toml"


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "study-v1"
    shutil.rmtree(out, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_learnable_mnist(data / "mnist")
        env = {**os.environ, "CNNLAB_CACHE": str(Path(tmp) / "cache"), "OMP_NUM_THREADS": "1"}
        # Run from a copy, so the folder records no path of this checkout.
        for name in (STUDY.name, "tiny.toml"):
            shutil.copy(HERE / name, Path(tmp) / name)
        study = Path(tmp) / STUDY.name
        command = [sys.executable, "-m", "cnnlab", "run", str(study), "--out", str(out)]
        command += ["--data-dir", str(data), "--variants", "small", "--quiet", "--no-report"]
        subprocess.run(command, check=True, env=env)
    (out / "run.lock").unlink(missing_ok=True)
    for name in ("study.sqlite-wal", "study.sqlite-shm"):
        (out / name).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
