"""Coverage-guided fuzzing of the codec entry points with atheris (optional: ``make fuzz``).

One harness per entry point; each feeds libFuzzer's inputs to the same oracles the hypothesis
suites use (``tests/support/hostile*.py``), so a crash is either an exception other than the
documented ``FrameDecodeError`` or a wrong value (an assertion of the oracle):

==========================  ==============================================================
``fuzz_worker_response``    ``codec.worker_response`` (JSON, bytes and str input) and
                            ``codec.worker_response_msgpack``, checked against msgspec's own
                            decode; the envelope peek checked against the full decode
``fuzz_worker_request``     the same for ``codec.worker_request`` / ``_msgpack``
``fuzz_peek``               ``peek_worker_response`` / ``peek_worker_request`` alone (fast:
                            many more inputs per second on the envelope path)
``fuzz_decode_lines``       ``decode_lines`` / ``iter_lines`` against per-line decoding
``fuzz_sse``                ``SSEParser.feed`` in fuzzer-chosen chunks against a whole-stream
                            reference parser (``errors="replace"``), and strict mode
``fuzz_msgpack_frames``     ``decode_frames`` / ``iter_frames`` against a plain splitter
==========================  ==============================================================

Run one from the repository root (atheris is not a dependency: ``pip install atheris``)::

    .venv/bin/python -m fuzz.fuzz_sse -max_total_time=60 [CORPUS_DIR ...]

Without a corpus directory, one is made under ``$TMPDIR/oasst-fuzz/<harness>`` and seeded
with valid frames. Every libFuzzer flag works (``-runs=``, ``-max_len=``, ``-jobs=``). A crash
is written to ``crash-<sha1>`` in the current directory; replay it with the harness and the
file as argument, then turn it into a regression test in ``tests/codec/test_hostile_*.py``.
"""
