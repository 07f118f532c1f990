"""Build the guests in examples/languages/ (one folder per language), with a content-hashed cache.

    .venv/bin/python examples/languages/build.py [LANGUAGE...] [--strict] [--demo DIR]

Everything is in ``gallery.py`` beside this file: the languages, their toolchains, the cache.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gallery  # found through the path set just above

if __name__ == "__main__":
    raise SystemExit(gallery.main())
