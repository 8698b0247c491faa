"""The compare page's "what differs" table: flattening and diffing run configs."""

from __future__ import annotations

from webapp.runs import config_diff
from webapp.runs.config_diff import compare_configs, flatten_config


def _cells(table, key: str) -> tuple[str | None, ...]:
    return next(row.cells for row in table.rows if row.key == key)


def test_flatten_names_nested_keys_and_list_items_with_dots():
    config = {
        "name": "cpt",
        "optim": {"lr": 3e-05, "betas": {"b1": 0.9}},
        "data": {"corpora": [{"path": "dataset://1", "weight": 0.7}, {"path": "dataset://2"}]},
        "empty": {},
        "none": [],
    }
    assert flatten_config(config) == {
        "name": "cpt",
        "optim.lr": 3e-05,
        "optim.betas.b1": 0.9,
        "data.corpora.0.path": "dataset://1",
        "data.corpora.0.weight": 0.7,
        "data.corpora.1.path": "dataset://2",
        "empty": {},
        "none": [],
    }


def test_flatten_keeps_a_config_that_is_not_an_object_under_one_key():
    assert flatten_config(["a", "b"]) == {config_diff.ROOT_KEY: ["a", "b"]}
    assert flatten_config(None) == {config_diff.ROOT_KEY: None}


def test_flatten_stops_at_max_depth_and_keeps_the_rest_as_one_value():
    deep: dict = {"leaf": 1}
    for _ in range(config_diff.MAX_DEPTH + 5):
        deep = {"k": deep}
    flat = flatten_config(deep)
    [(key, value)] = flat.items()
    assert key.count(".") == config_diff.MAX_DEPTH - 1
    assert isinstance(value, dict)


def test_equal_configs_give_an_empty_diff_but_every_row():
    config = {"optim": {"lr": 1e-4}, "data": {"seq_len": 1024}}
    table = compare_configs([config, {"data": {"seq_len": 1024}, "optim": {"lr": 1e-4}}])
    assert table.differing == ()
    assert [row.key for row in table.rows] == ["data.seq_len", "optim.lr"]
    assert not table.truncated


def test_diff_lists_only_changed_keys_sorted_by_key():
    a = {"name": "a", "optim": {"lr": 3e-05, "eps": 1e-08}, "data": {"seq_len": 1024}}
    b = {"name": "b", "optim": {"lr": 1e-04, "eps": 1e-08}, "data": {"seq_len": 2048}}
    table = compare_configs([a, b])
    assert [row.key for row in table.differing] == ["data.seq_len", "name", "optim.lr"]
    assert _cells(table, "optim.lr") == ("3e-05", "0.0001")
    assert _cells(table, "optim.eps") == ("1e-08", "1e-08")


def test_a_key_missing_from_one_run_differs_and_shows_as_none():
    a = {"data": {"corpora": [{"path": "dataset://1", "weight": 1.0}]}}
    b = {"data": {"corpora": [{"path": "dataset://1", "weight": 1.0}, {"path": "dataset://9"}]}}
    c = {"data": {"corpora": [{"path": "dataset://1", "weight": 1.0}]}}
    table = compare_configs([a, b, c])
    assert [row.key for row in table.differing] == ["data.corpora.1.path"]
    assert _cells(table, "data.corpora.1.path") == (None, "dataset://9", None)


def test_list_items_sort_by_their_number():
    corpora = [{"weight": float(i)} for i in range(12)]
    table = compare_configs([{"data": {"corpora": corpora}}])
    keys = [row.key for row in table.rows]
    assert keys == [f"data.corpora.{i}.weight" for i in range(12)]
    assert [r.key for r in compare_configs([{"²": 1, "1": 2}]).rows] == ["1", "²"]


def test_values_compare_by_type_as_written():
    table = compare_configs([{"x": 1, "y": True, "z": "1"}, {"x": 1.0, "y": 1, "z": 1}])
    assert [row.key for row in table.differing] == ["x", "y", "z"]
    assert _cells(table, "y") == ("true", "1")
    assert _cells(table, "x") == ("1", "1.0")


def test_values_stay_plain_text_and_long_ones_are_cut():
    script = "<script>alert(1)</script>"
    long = "x" * 5000
    table = compare_configs([{"name": script, "note": long}, {"name": "ok", "note": "y"}])
    assert _cells(table, "name") == (script, "ok")  # the template escapes it
    cut = _cells(table, "note")[0]
    assert cut is not None and len(cut) == config_diff.MAX_VALUE_CHARS and cut.endswith("…")


def test_too_many_keys_are_truncated():
    config = {f"k{i}": i for i in range(config_diff.MAX_KEYS + 10)}
    table = compare_configs([config, {}])
    assert table.truncated
    assert len(table.rows) == config_diff.MAX_KEYS


def test_no_runs_give_no_rows():
    assert compare_configs([]) == config_diff.ConfigTable(rows=(), truncated=False)
