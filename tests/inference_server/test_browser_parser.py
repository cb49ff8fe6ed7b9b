"""The port of the website's ``iteratorSSE`` / ``handleChatEventStream`` (``browser.py``) behaves as
the JavaScript does, however the body is cut into chunks (no sockets here)."""

from __future__ import annotations

import json

from tests.inference_server.browser import chat_events, iterator_sse

MESSAGE = {"event_type": "message", "message": {"id": "m1", "content": "héllo wörld"}}
BODY = (
    'data: {"event_type":"pending","queue_position":1,"queue_size":2}\r\n\r\n'
    ": ping - 2024-01-01 00:00:00\r\n\r\n"
    'data: {"event_type":"token","text":"h\\u00e9llo"}\r\n\r\n'
    'data:{"event_type":"token","text":" w\\u00f6rld"}\n\n'
    f"data: {json.dumps(MESSAGE, ensure_ascii=False)}\r\n\r\n"
    'data: {"event_type":"token","text":"after the end"}\r\n\r\n'
).encode()


def test_fields_are_one_per_line() -> None:
    fields = list(iterator_sse([BODY]))
    assert fields[0] == {"data": '{"event_type":"pending","queue_position":1,"queue_size":2}'}
    assert fields[1] == {"": "ping - 2024-01-01 00:00:00"}
    assert fields[3] == {"data": '{"event_type":"token","text":" w\\u00f6rld"}'}  # "data:" with no space
    assert len(fields) == 6


def test_any_two_chunks_give_the_same_events() -> None:
    whole = [(e.kind, e.chunk, e.partial) for e in chat_events(iterator_sse([BODY]))]
    for cut in range(1, len(BODY)):  # every cut, inside CRLFs and multi-byte characters too
        split = list(chat_events(iterator_sse([BODY[:cut], BODY[cut:]])))
        assert [(e.kind, e.chunk, e.partial) for e in split] == whole, cut


def test_the_browser_stops_at_the_message_and_skips_comments() -> None:
    events = list(chat_events(iterator_sse(bytes([b]) for b in BODY)))  # one byte at a time
    assert [e.kind for e in events] == ["pending", "parse_error", "token", "token", "message"]
    assert events[3].partial == "héllo wörld"
    assert events[-1].chunk == MESSAGE


def test_an_error_chunk_ends_it_and_a_line_without_colon_is_kept_as_the_js_does() -> None:
    body = (
        b'garbage\ndata: {"event_type":"error","error":"boom","message":null}\n\n'
        b'data: {"event_type":"token"}\n'
    )
    fields = list(iterator_sse([body]))
    assert fields[0] == {"garbag": "garbage"}  # line.slice(0, -1), line.slice(0)
    events = list(chat_events(fields))
    assert [e.kind for e in events] == ["parse_error", "error"]
    assert events[1].chunk["error"] == "boom"


def test_an_unfinished_last_line_is_not_yielded() -> None:
    assert list(iterator_sse([b'data: {"a": 1}\n', b'data: {"b"'])) == [{"data": '{"a": 1}'}]
