"""Development tools of a source checkout (not installed with the package).

``python -m tools.generate_sync`` writes ``oasst_shared/api_client/_sync.py`` (the blocking
facade) from the async client; ``python -m tools.generate_views`` writes the Pydantic views in
``compat/oasst_compat`` from the structs. ``make generate`` runs both, ``make compat`` the
second; each takes ``--check`` (exit status 1 when a committed file is stale).
"""
