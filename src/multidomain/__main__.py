"""``python -m multidomain``: the command line, as ``multidomain``."""

from multidomain.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
