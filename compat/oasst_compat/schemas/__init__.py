"""Pydantic views of ``oasst_shared.schemas``: ``protocol`` (backend) and ``inference`` (workers)."""
