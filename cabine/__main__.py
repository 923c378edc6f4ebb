"""python -m cabine: the `cabine` command."""

import sys

from cabine.cli import main

sys.exit(main())
