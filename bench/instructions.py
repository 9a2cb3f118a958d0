"""Count the CPU instructions one signed-in page view costs, with valgrind's callgrind.

Instruction counts do not depend on the machine's load or its clock, so two
versions of the code compare exactly where req/s from ``make bench`` cannot
(another machine, another CPU). Usage, from the repository root::

    python bench/instructions.py                  # this checkout
    PYTHONPATH=/path/to/other/src python bench/instructions.py   # another version

It runs the page loop twice under callgrind, with 0 and with ``--views`` page
views after the same warm-up, and prints the difference per view. Each run
takes a few minutes (everything runs about 50 times slower under valgrind).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

PASSWORD = "correct horse battery staple"
WARM_UP = 20


def views(count: int) -> None:
    """The measured program: the demo on SQLite, ada signed in, ``count`` GET /account."""
    import flask_migrate

    from flask_portcullis import get_state
    from flask_portcullis.demo import MIGRATIONS, create_app

    folder = tempfile.mkdtemp()
    config = {
        "SECRET_KEY": "x" * 40,
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder}/bench.db",
        "RATELIMIT_ENABLED": False,
        "WTF_CSRF_ENABLED": False,
        "PORTCULLIS_SECURE_COOKIES": False,
        "PORTCULLIS_ARGON2_TIME_COST": 1,
        "PORTCULLIS_ARGON2_MEMORY_COST": 64,
        "PORTCULLIS_ARGON2_PARALLELISM": 1,
    }
    app = create_app(config, instance_path=folder)
    with app.app_context():
        flask_migrate.upgrade(directory=MIGRATIONS)
        get_state(app).accounts.register("ada", "ada@example.com", PASSWORD, verified=True)
    client = app.test_client()
    response = client.post("/login", data={"identity": "ada", "password": PASSWORD})
    assert response.status_code == 302, response.status_code
    for _ in range(WARM_UP + count):
        assert client.get("/account").status_code == 200


def collected(count: int) -> int:
    """Run ``views(count)`` under callgrind; return the instructions it counted."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--run",
            str(count),
        ]
        done = subprocess.run(  # noqa: S603 (our own fixed command)
            command, capture_output=True, text=True, check=True, env=os.environ
        )
    match = re.search(r"Collected : (\d+)", done.stderr)
    assert match, done.stderr[-2000:]
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=200)
    parser.add_argument("--run", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run is not None:
        views(args.run)
        return
    base, loaded = collected(0), collected(args.views)
    import flask_portcullis

    per_view = (loaded - base) / args.views
    print(f"{flask_portcullis.__file__}: {per_view / 1e6:.3f}M instructions per signed-in page")


if __name__ == "__main__":
    main()
