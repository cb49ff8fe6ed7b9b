"""Support code shared by the test suites, ``fuzz/`` and ``benchmarks/`` (no tests here).

* ``hostile``: the decoders under test, the outcome oracle (``attempt`` / ``Failed``), the
  per-frame oracles that compare our decoders with msgspec's own, and the frame mutations.
* ``hostile_streams``: plain references for the stream decoders (NDJSON, length-prefixed
  msgpack, SSE).
* ``compat``: the struct <-> Pydantic view pairs the compat suites walk.
* ``factories``: example messages with fixed, realistic values (a large GPU worker, its load).
* ``decoding``: a document decoded as a type, and the check that a bad one is refused with its
  problem and path.
* ``processes``: a snippet run in a fresh interpreter (optionally with modules hidden).
"""
