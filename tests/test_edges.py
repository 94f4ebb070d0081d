"""results.sweep.edges: the value beyond an edge, which edges a round extends (with its bounds), the
grid points it adds (the table stays a full factorial), and the record a resume reads back."""
from __future__ import annotations

from results.sweep import edges, settings

GRID = {"hidden": [64, 128, 256, 512, 1024], "lr": [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1],
        "l2": [0.001, 0.005, 0.01, 0.05, 0.1]}


def best(h, lr, l2):
    return {"hidden_size": h, "learning_rate": lr, "l2": l2}


def test_the_value_beyond_an_edge_worked_by_hand():
    assert edges.beyond("learning_rate", [0.05, 0.1], upward=True) == 0.2
    assert edges.beyond("learning_rate", [0.0001, 0.0005], upward=False) == 0.00002
    assert edges.beyond("l2", [0.001, 0.005], upward=False) == 0.0002  # not 0.00019999999999999998
    assert edges.beyond("l2", [0.05, 0.1], upward=True) == 0.2
    assert edges.beyond("hidden_size", [512, 1024], upward=True) == 2048
    assert edges.beyond("hidden_size", [64, 128], upward=False) == 32
    assert edges.beyond("l2", [0.0, 0.001], upward=False) is None  # L2 stops at 0
    assert edges.beyond("hidden_size", [1, 2], upward=False) is None


def test_a_round_extends_each_edge_the_best_sits_on_within_the_bounds():
    assert edges.edges(best(256, 0.1, 0.001), GRID, 4096) == {"lr": ("up", 0.2), "l2": ("down", 0.0002)}
    assert edges.edges(best(1024, 0.01, 0.01), GRID, 4096) == {"hidden": ("up", 2048)}
    assert edges.edges(best(1024, 0.01, 0.01), GRID, 1024) == {}  # --max-hidden
    assert edges.edges(best(256, 0.01, 0.01), GRID, 4096) == {}  # inside on every axis
    assert edges.edges(best(64, 0.01, 0.0), {**GRID, "l2": [0.0, 0.001]}, 4096) == {"hidden": ("down", 32)}


def test_a_round_adds_the_new_points_of_the_full_cross_and_keeps_every_old_one():
    added = edges.edges(best(256, 0.1, 0.001), GRID, 4096)
    after = edges.extended(GRID, added)
    new = edges.new_points(GRID, after)
    assert len(new) == 5 * 8 * 6 - 175 == 65
    old = {settings.grid_key(c) for c in settings.grid(GRID)}
    assert not {settings.grid_key(c) for c in new} & old
    assert {settings.grid_key(c) for c in new} | old == {settings.grid_key(c) for c in settings.grid(after)}


def test_the_record_gives_a_resume_the_same_rounds(tmp_path):
    first = edges.plan_round(tmp_path, GRID, 1, best(256, 0.1, 0.001), 4096)
    # a resume asks again with another best (its tables may have moved on): the record decides
    again = edges.plan_round(tmp_path, GRID, 1, best(64, 0.01, 0.01), 4096)
    assert first == again and len(first[1]) == 65
    second = edges.plan_round(tmp_path, GRID, 2, best(256, 0.2, 0.0002), 4096)
    assert second[0] == {"lr": ("up", 0.4), "l2": ("down", 0.00004)}
    assert len(second[1]) == 5 * 9 * 7 - 5 * 8 * 6
    rounds = edges.read_rounds(tmp_path)
    assert [r["round"] for r in rounds] == [1, 2] and [r["trials"] for r in rounds] == [65, 75]
    assert edges.axes_after(GRID, rounds)["lr"][-2:] == [0.2, 0.4]
    assert edges.plan_round(tmp_path, GRID, 3, best(256, 0.2, 0.0002), 4096) is None  # inside now
    assert len(edges.read_rounds(tmp_path)) == 2
    with open(tmp_path / edges.ROUNDS_LOG, "a") as f:
        f.write('{"round": 3, "tri')  # a line cut short by a crash: that round did not start
    assert len(edges.read_rounds(tmp_path)) == 2
    third = edges.plan_round(tmp_path, GRID, 3, best(1024, 0.2, 0.0002), 4096)  # written after it
    assert third[0] == {"hidden": ("up", 2048)} and len(edges.read_rounds(tmp_path)) == 3
