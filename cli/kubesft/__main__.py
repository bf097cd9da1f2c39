"""``python -m kubesft``: the same as the ``kubesft`` command."""

import sys

from kubesft.commands import main

sys.exit(main())
