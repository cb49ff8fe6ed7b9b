"""Development tools of a source checkout (not installed with the package).

``python -m tools.generate_sync`` writes ``oasst_shared/api_client/_sync.py`` (the blocking
facade) from the async client; ``python -m tools.generate_views`` writes the Pydantic views in
``compat/oasst_compat`` from the structs. ``make generate`` runs both, ``make compat`` the
second. ``python -m tools.api_snapshot`` writes ``api/public-api.txt``, the public API as one
line per name (``make api``). Each takes ``--check`` (exit status 1 when a committed file is
stale); the tests run the checks.
"""
