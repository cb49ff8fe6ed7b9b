"""The distribution as a whole: the documentation's examples run, import cost, optional
dependencies, and drop-in use (code written against the reference runs unchanged)."""
