"""The ``oasst-shared`` command line."""
