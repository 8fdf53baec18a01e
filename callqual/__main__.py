"""``python -m callqual`` is the ``callqual`` command."""

import sys

from callqual.cli.main import main

sys.exit(main())
