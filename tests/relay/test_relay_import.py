"""Import rules: only ``oasst_shared.relay`` (and ``oasst_shared.server``, the framework pieces built
on it) imports redis; without redis it names the extra to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

HIDE_REDIS = textwrap.dedent(
    """
    import sys

    class HideRedis:
        # a meta path finder that makes redis (and hiredis) look uninstalled
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("redis", "hiredis"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, HideRedis())
    """
)


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HIDE_REDIS + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_relay_without_redis_names_the_extra() -> None:
    proc = run(
        """
        try:
            import oasst_shared.relay
        except ImportError as exc:
            print("ERR", exc)
        else:
            print("imported")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "ERR" in proc.stdout
    assert "pip install 'oasst-shared[redis]'" in proc.stdout


def test_nothing_else_in_oasst_shared_imports_redis() -> None:
    proc = run(
        """
        import importlib, pkgutil, sys
        import oasst_shared
        failed = []
        for mod in pkgutil.walk_packages(oasst_shared.__path__, "oasst_shared."):
            if mod.name.split(".")[1] in ("relay", "server"):  # the relay, and what is built on it
                continue
            if mod.name == "oasst_shared.__main__":
                continue
            try:
                importlib.import_module(mod.name)
            except ImportError as exc:
                if "redis" in str(exc):
                    failed.append(f"{mod.name}: {exc}")
        print("FAILED", failed)
        print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] in ("redis", "hiredis")))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "FAILED []" in proc.stdout, proc.stdout
    assert "LOADED []" in proc.stdout, proc.stdout
