"""results.sweep.settings: each setting declared once, and everything that names a setting derived from
that declaration: the command line's flags, the API's keywords, SweepSpec, sweep.json's shape,
the tables' columns and the training config."""
import json
from dataclasses import fields

import pytest

import run_search
from mlp_core.train import TrainConfig
from results.folder import schema
from results.folder import table as T
from results.sweep import settings
from results.sweep.spec import SweepSpec
from search import api


def run_parser_actions():
    parser = run_search.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return {a.dest: a for a in sub.choices["run"]._actions}


def test_every_setting_is_a_flag_of_run_with_its_default_in_the_help():
    actions = run_parser_actions()
    for s in settings.SETTINGS:
        a = actions[s.name]
        assert a.option_strings == [s.flag]
        assert a.default is None  # a flag not given is not a value given (a resume must match)
        shown = s.default_shown or settings.shown_value(s.default)
        assert f"(default: {shown})" in a.help or a.help == f"default: {shown}"
        assert tuple(a.choices or ()) == s.kind.choices


def test_every_setting_is_a_field_of_the_spec_the_api_and_sweep_json():
    names = [s.name for s in settings.SETTINGS]
    assert [f.name for f in fields(SweepSpec)][:len(names)] == names
    assert {f.name: f.default for f in fields(SweepSpec) if f.name in names} == settings.DEFAULTS
    assert set(api.DEFAULTS) | set(api.PLACEMENT) == set(names)
    assert set(names) <= set(schema.SWEEP_FIELDS)
    assert set(SweepSpec().to_json()) <= set(schema.SWEEP_FIELDS)  # everything written is declared


def test_every_field_of_the_training_config_is_set_by_exactly_one_setting():
    """...but for the model's inputs and classes, which the data brings."""
    set_by = [s.column for s in settings.AXES] + [s.train for s in settings.SETTINGS if s.train]
    assert sorted(set_by) == sorted(f.name for f in fields(TrainConfig) if f.name not in ("n_inputs", "n_classes"))
    assert T.HYPERPARAMETERS == settings.HYPERPARAMETERS == ("hidden_size", "learning_rate", "l2")
    spec = SweepSpec(hidden=(16,), lr=(0.5,), l2=(0.0,), epochs=3, batch_size=32, seed=4, momentum=0.5)
    (point,) = spec.configs()
    cfg = TrainConfig(**point, **spec.train_values())
    assert (cfg.hidden_size, cfg.learning_rate, cfg.l2, cfg.epochs, cfg.batch_size, cfg.seed,
            cfg.momentum) == (16, 0.5, 0.0, 3, 32, 4, 0.5)
    assert type(point["hidden_size"]) is int and type(point["learning_rate"]) is float


# One refused value per setting that checks more than its type, as typed and as the API gets it:
# the same reason either way.
BAD = [("epochs", "0", 0), ("batch_size", "-3", -3), ("seed", "-1", -1), ("val_fraction", "1.5", 1.5),
       ("momentum", "1", 1), ("reduction_factor", "1", 1), ("cpus_per_trial", "0", 0),
       ("max_concurrent", "-1", -1), ("hidden", "0,8", (0, 8)), ("lr", "0", (0,)),
       ("l2", "-0.5", (-0.5,)), ("rungs", "2,1", (2, 1)), ("rungs", "0.5,1.5", (0.5, 1.5)),
       ("hidden", "8,8", (8, 8)), ("epochs", "2.5", 2.5), ("val_fraction", "nan", float("nan"))]


@pytest.mark.parametrize("name, text, value", BAD)
def test_a_value_is_refused_for_the_same_reason_on_the_command_line_and_in_python(name, text, value):
    flag = settings.BY_NAME[name].flag
    with pytest.raises(run_search.CliError) as e:
        run_search.build_parser().parse_args(["run", flag, text])
    typed = str(e.value)
    assert typed.startswith(f"argument {flag}: ")
    (given,) = settings.problems({name: value})
    assert given.startswith(f"{flag}: ")
    if name == "epochs" and text == "2.5":  # as typed it is not an int; as a value not whole
        assert "'2.5' is not a whole number" in typed and "2.5 is not a whole number" in given
    elif name == "val_fraction" and text == "nan":
        assert "nan" in typed and "nan is not a number" in given
    else:
        assert typed.removeprefix("argument ").split(" (see ")[0] == given


def test_every_default_passes_its_own_check():
    assert settings.problems(settings.DEFAULTS) == []
    SweepSpec().validate()


def test_a_sweep_json_without_a_later_setting_reads_back_with_its_default(tmp_path):
    """A setting sweep.json does not name (one a later release adds) or leaves empty (a
    placement) comes back at its default; one that every sweep.json must name is refused."""
    written = SweepSpec(hidden=(16,), lr=(0.1,), l2=(0.001,)).to_json()
    del written["batch_size"], written["partial_val"]
    sweep = settings.completed(written)
    assert sweep["batch_size"] == 256 and sweep["partial_val"] == "scaled" and sweep["data_dir"] is None
    assert sweep["hidden"] == (16,) and SweepSpec.from_json(written) == SweepSpec(hidden=(16,), lr=(0.1,), l2=(0.001,))
    del written["epochs"]
    (tmp_path / "sweep.json").write_text(json.dumps(written))
    with pytest.raises(T.RunError, match="epochs"):
        T.load_sweep(tmp_path)

