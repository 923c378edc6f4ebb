"""python -m gateway: the `cabine` command."""

import sys

from gateway.cli import main

sys.exit(main())
