"""The report's arithmetic, on synthetic medians (no timing)."""

from __future__ import annotations

from benchmarks.report import Row, bare_table, best_medians, bounds, goals, table


def rows() -> list[Row]:
    return [
        Row("TokenResponse", "decode", "struct", 200e-9),
        Row("TokenResponse", "decode", "orjson", 400e-9),
        Row("TokenResponse", "decode", "view", 1000e-9),
        Row("TokenResponse", "relay", "struct", 500e-9),
        Row("TokenResponse", "relay", "struct-peek", 100e-9),
        Row("TokenResponse", "peek", "struct", 150e-9),
        Row("TokenResponse", "peek", "msgspec-skip-all", 100e-9),
        Row("TokenResponse", "peek", "msgspec-request-id-only", 125e-9),
        Row("TokenResponse", "peek", "orjson", 250e-9),
    ]


def test_table_ratios() -> None:
    text, records = table(rows())
    decode = next(r for r in records if r["op"] == "decode")
    assert decode["struct_over_orjson"] == 0.5
    assert decode["view_over_struct"] == 5.0
    assert "| TokenResponse | decode | 200 ns | 0.50x | 5.0x | 400 ns |" in text


def test_goals_met_and_missed() -> None:
    text, records = goals(rows(), {"import / msgspec": (1.6, 1.5, "le")})
    by_goal = {r["goal"]: r for r in records}
    assert by_goal["token decode / orjson.loads"]["met"] == "yes"  # 0.5 <= 0.75
    assert by_goal["token decode: view / struct"]["met"] == "yes"  # 5.0 >= 3
    assert by_goal["relay: decode+encode / peek+forward"]["ratio"] == 5.0
    assert by_goal["WorkRequest decode / orjson.loads"]["met"] == "not measured"
    assert by_goal["import / msgspec"]["met"] == "no"
    assert "| import / msgspec | 1.60x | <= 1.5x | no |" in text


def test_best_medians_keeps_the_lowest_per_case() -> None:
    first = [Row("T", "decode", "struct", 600e-9), Row("T", "decode", "orjson", 400e-9)]
    second = [Row("T", "decode", "struct", 300e-9), Row("T", "decode", "orjson", 450e-9)]
    best = {(r.message, r.op, r.impl): r.median for r in best_medians([first, second])}
    assert best == {("T", "decode", "struct"): 300e-9, ("T", "decode", "orjson"): 400e-9}


def test_peek_goal_and_its_bounds() -> None:
    _, records = goals(rows(), {})
    peek = next(r for r in records if r["goal"] == "envelope peek / orjson.loads")
    assert (peek["ratio"], peek["met"]) == (0.6, "no")  # 150 / 250 > 0.35
    text, found = bounds(rows())
    by_label = {r["bound"].split(":")[0]: r for r in found}
    assert by_label["request_id-only decode / orjson.loads"]["ratio"] == 0.5
    assert by_label["decode+encode / request_id-only decode"]["ratio"] == 4.0  # 500 / 125
    assert by_label["skip-all decode / orjson.loads"]["ratio"] == 0.4
    assert by_label["msgspec / orjson.dumps on the WorkRequest's string values alone"]["ratio"] is None
    assert "| relay >= 3.5x |" in text


def test_bare_table_ratios() -> None:
    times = {
        "orjson.loads": 400e-9,
        "msgspec skip-all": 100e-9,
        "request_id only": 125e-9,
        "peek": 200e-9,
        "decode+encode": 500e-9,
    }
    text = bare_table(times)
    assert "| msgspec skip-all | 100 ns | 0.25x |" in text
    assert "| relay: decode+encode / peek | - | 2.50x (over request_id only: 4.00x) |" in text
