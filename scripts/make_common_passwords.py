"""Regenerate ``src/flask_portcullis/data/common-passwords.txt.gz``.

The list is the "passwords" frequency list that ships with the zxcvbn package
(zxcvbn 4.5.0, MIT licence, itself drawn from Mark Burnett's and Xato's
leaked-password corpora), keeping only entries at least 8 characters long:
shorter ones are refused by the length rule anyway (NIST SP 800-63B 5.1.1.2).

Run it in a throw-away virtualenv: ``pip install zxcvbn==4.5.0`` then
``python scripts/make_common_passwords.py``. zxcvbn is not a runtime
dependency; only the generated file is shipped.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from zxcvbn.frequency_lists import FREQUENCY_LISTS  # type: ignore[import-not-found]

MIN_LENGTH = 8
TARGET = Path(__file__).parent.parent / "src/flask_portcullis/data/common-passwords.txt.gz"


def main() -> None:
    seen: dict[str, None] = {}
    for word in FREQUENCY_LISTS["passwords"]:
        if len(word) >= MIN_LENGTH:
            seen.setdefault(word.casefold(), None)
    header = "# zxcvbn 4.5.0 'passwords' list, entries of 8+ characters, casefolded\n"
    body = header + "\n".join(seen) + "\n"
    # mtime=0 keeps the file byte-identical across regenerations.
    TARGET.write_bytes(gzip.compress(body.encode(), mtime=0))
    print(f"wrote {len(seen)} passwords to {TARGET}")


if __name__ == "__main__":
    main()
