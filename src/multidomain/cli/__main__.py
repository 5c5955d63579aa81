"""``python -m multidomain.cli`` (e.g. under ``torchrun``)."""

import sys

from multidomain.cli import main

sys.exit(main())
