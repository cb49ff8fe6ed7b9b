"""The codec: JSON and MessagePack codecs, framing, SSE, frame tags, error paths, and the
hostile-input suites (with the fuzz harnesses' smoke test)."""
