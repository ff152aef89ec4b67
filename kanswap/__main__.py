"""``python -m kanswap`` and the ``kanswap`` console script (``kanswap demo --help``)."""

import sys

from .demo import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
