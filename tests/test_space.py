"""results.sweep.space and the grid of results.sweep.settings: the default grid, list parsing with errors that
name the flag, seeded order."""
import pytest

from results.sweep import halving, settings, space


def test_default_grid_is_the_175_combinations():
    g = settings.grid(settings.DEFAULTS)
    assert len(g) == 175
    assert len({tuple(c.values()) for c in g}) == 175
    assert {c["hidden_size"] for c in g} == {64, 128, 256, 512, 1024}
    assert {c["learning_rate"] for c in g} == {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1}
    assert {c["l2"] for c in g} == {0.001, 0.005, 0.01, 0.05, 0.1}


def test_shuffled_is_a_seeded_permutation():
    g = settings.grid(settings.DEFAULTS)
    a, b, c = space.shuffled(g, 0), space.shuffled(g, 0), space.shuffled(g, 1)
    assert a == b and a != c and a != g
    def key(d):
        return tuple(d.values())
    assert sorted(a, key=key) == sorted(g, key=key)


def test_parse_lists():
    assert space.parse_int_list("--hidden", "64, 32") == (32, 64)
    assert space.parse_float_list("--lr", "0.1,1e-3", positive=True) == (0.001, 0.1)
    assert space.parse_float_list("--l2", "0,0.5", positive=False) == (0.0, 0.5)


def test_parse_rungs_whole_epochs_and_fractions_of_the_first():
    rungs = space.parse_rungs("--rungs", "0.125, 0.25,1,2.0,4")
    assert rungs == (0.125, 0.25, 1, 2, 4)
    assert [type(r) for r in rungs] == [float, float, int, int, int]  # 2, not 2.0, in sweep.json
    assert halving.partial_rungs(rungs) == (0.125, 0.25)
    assert halving.partial_rungs(settings.DEFAULTS["rungs"]) == (0.25,)
    assert halving.rungs_used(rungs, 2) == (0.125, 0.25, 1)


@pytest.mark.parametrize("text, message", [
    ("1,1", "1,1: rungs must be increasing"),
    ("2,1", "2,1: rungs must be increasing"),
    ("0,1", "0,1: 0 is not a positive number of epochs"),
    ("-0.5", "-0.5: -0.5 is not a positive number of epochs"),
    ("1.5", "1.5: 1.5 is neither a whole number of epochs nor a fraction of the first"),
    ("inf", "inf: inf is not a positive number of epochs"),
    ("0.25,x", "'x' is not a number"),
    ("", "empty list"),
])
def test_parse_rungs_errors_name_the_flag(text, message):
    with pytest.raises(space.SpaceError) as e:
        space.parse_rungs("--rungs", text)
    assert str(e.value).startswith("--rungs: ") and message in str(e.value)


@pytest.mark.parametrize("flag, text, kind, message", [
    ("--hidden", "64,abc", "int", "'abc' is not a whole number"),
    ("--hidden", "0", "int", "0 must be a positive integer"),
    ("--hidden", "1.5", "int", "not a whole number"),
    ("--hidden", "", "int", "empty list"),
    ("--hidden", "64,,128", "int", "empty item"),
    ("--lr", "0.1,x", "lr", "'x' is not a number"),
    ("--lr", "0", "lr", "must be positive"),
    ("--lr", "-0.1", "lr", "must be positive"),
    ("--lr", "nan", "lr", "must be finite"),
    ("--lr", "inf", "lr", "must be finite"),
    ("--l2", "-1", "l2", "must be non-negative"),
    ("--l2", "0.1,0.1", "l2", "repeated value"),
])
def test_parse_errors_name_the_flag(flag, text, kind, message):
    with pytest.raises(space.SpaceError) as e:
        if kind == "int":
            space.parse_int_list(flag, text)
        else:
            space.parse_float_list(flag, text, positive=(kind == "lr"))
    assert str(e.value).startswith(flag) and message in str(e.value)
