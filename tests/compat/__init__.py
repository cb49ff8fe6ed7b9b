"""The Pydantic v2 views (``oasst_compat``): pairing with the structs, the wire, the reference
spec, FastAPI, typing, and the generator's freshness."""
