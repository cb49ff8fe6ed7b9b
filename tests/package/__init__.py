"""The distribution as a whole: the documentation's examples run, import cost, optional
dependencies, and the drop-in replacement for the reference package."""
