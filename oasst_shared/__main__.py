"""``python -m oasst_shared``: the ``oasst-shared`` command line."""

from oasst_shared.cli import main

raise SystemExit(main())
