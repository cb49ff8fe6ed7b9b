"""What the harnesses share: corpus, seeds and dictionary set-up, near-valid inputs, and the
libFuzzer entry.

msgspec is a C extension that atheris does not instrument, so coverage only sees our Python
code; two things make up for it on the decoder harnesses: a dictionary of every field name,
tag value and hostile snippet (libFuzzer splices them in), and ``near_valid``, which turns
each input into a few edits of a valid frame so that most inputs get past the first byte.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import atheris
import msgspec.inspect as mi


def seeds_of(strategy: Any, encode: Callable[[Any], bytes], count: int = 40) -> list[bytes]:
    """``count`` encoded examples of a hypothesis strategy (new ones each run)."""
    from hypothesis.errors import NonInteractiveExampleWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        return [encode(strategy.example()) for _ in range(count)]


def near_valid(data: bytes, pool: list[bytes]) -> bytes:
    """A frame of ``pool`` (chosen by ``data``) with one to four edits read from ``data``:
    a cut, an insertion of fuzzer bytes, a byte replaced, a range deleted."""
    fdp = atheris.FuzzedDataProvider(data)
    frame = bytearray(pool[fdp.ConsumeIntInRange(0, len(pool) - 1)])
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        if not frame:
            break
        at = fdp.ConsumeIntInRange(0, len(frame) - 1)
        op = fdp.ConsumeIntInRange(0, 3)
        if op == 0:
            del frame[at:]
        elif op == 1:
            frame[at:at] = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 16))
        elif op == 2:
            frame[at] = fdp.ConsumeIntInRange(0, 255)
        else:
            del frame[at : at + fdp.ConsumeIntInRange(1, 16)]
    return bytes(frame)


def union_harness(
    name: str, json_codec: Any, msgpack_codec: Any
) -> tuple[Callable[[bytes], None], Callable[[], list[bytes]]]:
    """``test_one_input`` and ``seeds`` for a union's JSON and MessagePack codecs: each input
    is tried as JSON bytes, as ``str`` (surrogates allowed), as MessagePack, and as a few
    edits of a valid frame in either format."""
    from tests.support.hostile import check_union_json, check_union_msgpack
    from tests.support.strategies import instances

    pool_json = seeds_of(instances(json_codec.type), json_codec.encode, count=60)
    pool_msgpack = seeds_of(instances(json_codec.type), msgpack_codec.encode, count=60)

    def test_one_input(data: bytes) -> None:
        check_union_json(name, data)
        check_union_json(name, data.decode("utf-8", "surrogateescape"))
        check_union_msgpack(name, data)
        check_union_json(name, near_valid(data, pool_json))
        check_union_msgpack(name, near_valid(data, pool_msgpack))

    def seeds() -> list[bytes]:
        return pool_json + pool_msgpack

    return test_one_input, seeds


def _dictionary_tokens(types: Iterable[Any]) -> set[bytes]:
    """Every field name and tag value reachable from ``types``, and the hostile snippets."""
    from tests.support.hostile import SNIPPETS

    tokens = set(SNIPPETS)
    seen: set[Any] = set()

    def walk(info: Any) -> None:
        if isinstance(info, mi.StructType):
            if info.cls in seen:
                return
            seen.add(info.cls)
            if info.tag_field is not None:
                tokens.add(f'"{info.tag_field}":"{info.tag}"'.encode())
            for field in info.fields:
                tokens.add(f'"{field.encode_name}":'.encode())
                walk(field.type)
        elif isinstance(info, mi.UnionType):
            for member in info.types:
                walk(member)
        elif isinstance(info, mi.ListType | mi.DictType):
            walk(info.item_type if isinstance(info, mi.ListType) else info.value_type)
        elif isinstance(info, mi.LiteralType):
            tokens.update(f'"{value}"'.encode() for value in info.values)
        elif isinstance(info, mi.EnumType):
            tokens.update(f'"{member.value}"'.encode() for member in info.cls)

    for tp in types:
        walk(mi.type_info(tp))
    return tokens


def _write_dictionary(path: Path, tokens: set[bytes]) -> None:
    lines = ['"' + "".join(f"\\x{b:02x}" for b in token) + '"' for token in sorted(tokens)]
    path.write_text("\n".join(lines) + "\n")


def run(
    name: str,
    test_one_input: Callable[[bytes], None],
    seeds: Callable[[], Iterable[bytes]],
    dictionary_types: Iterable[Any] = (),
) -> None:
    """Fuzz ``test_one_input``. Without a corpus directory in ``sys.argv``, use a seeded one
    under ``$TMPDIR/oasst-fuzz/<name>``; without ``-dict=``, one built from
    ``dictionary_types``."""
    argv = list(sys.argv)
    work = Path(os.environ.get("TMPDIR", tempfile.gettempdir())) / "oasst-fuzz" / name
    if not any(not arg.startswith("-") for arg in argv[1:]):
        corpus = work / "corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        if not any(corpus.iterdir()):
            for i, seed in enumerate(seeds()):
                (corpus / f"seed-{i:03d}").write_bytes(seed)
        argv.append(str(corpus))
    if dictionary_types and not any(arg.startswith("-dict=") for arg in argv):
        work.mkdir(parents=True, exist_ok=True)
        _write_dictionary(work / "tokens.dict", _dictionary_tokens(dictionary_types))
        argv.insert(1, f"-dict={work / 'tokens.dict'}")
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
