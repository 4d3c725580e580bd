"""RunConfig: defaults, validation messages, round trips, presets, metadata, devices."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from urllib.parse import parse_qs

import numpy as np
import pytest
import torch

from ijr_core.config import (
    ACTIVATION_NAMES,
    DATASET_NAMES,
    GROUPS,
    MODEL_NAMES,
    OPTIMIZER_NAMES,
    PRESETS,
    ConfigError,
    RunConfig,
    field_help,
    fields_by_group,
    resolve_device,
)

FIELDS = dataclasses.fields(RunConfig)
FLOAT_FIELDS = [f.name for f in FIELDS if field_help()[f.name]["type"] == "float"]
INT_FIELDS = [f.name for f in FIELDS if field_help()[f.name]["type"].startswith("int")]

CONTRACT_DEFAULTS = dict(
    dataset="digits", n_train=1000, n_test=500, label_noise=0.3, standardize=True,
    data_path=None, model="mlp", width=128, depth=2, activation="tanh", optimizer="gd", lr=0.5,
    batch_size=None, momentum=0.0, weight_decay=0.0, rho=0.05, beta=1e-3, steps=800,
    probe_every=25, probe_size=1000, n_eigs=1, eig_tol=1e-3, checkpoint_limit=200, loss="ce",
    seed=0, data_seed=0, device="auto", eos_fraction=0.9, arp_fraction=0.5, phase_sustain=3,
    unstable_factor=2.0, arp_smoothing=5,
    divergence_factor=1e3, divergence_window=50, name=None,
)


def test_defaults_match_the_contract():
    c = RunConfig()
    for k, v in CONTRACT_DEFAULTS.items():
        assert getattr(c, k) == v, k
    # the default preset: SCIENCE.md's digits setting with more label noise and a smaller η
    assert RunConfig(label_noise=0.5, lr=0.3) == PRESETS["edge-of-stability"].replace(name=None)


# -- validation ----------------------------------------------------------------------

BAD = [
    # (changes, field named, fragment of the message)
    (dict(lr=0.0), "lr", "(0.0, 3.40282"),
    (dict(lr=-0.1), "lr", "(0.0, 3.40282"),
    (dict(lr=1e39), "lr", "(0.0, 3.40282"),  # float32 overflow: a failure, not divergence
    (dict(dataset="imagenet"), "dataset", "digits, moons"),
    (dict(model="resnet"), "model", "mlp, cnn, linear"),
    (dict(optimizer="adam"), "optimizer", "gd, sgd, sam, asam, ejr, jacobian-penalty"),
    (dict(activation="sigmoid"), "activation", "tanh, relu, gelu, elu, softplus"),
    (dict(loss="hinge"), "loss", "ce, mse"),
    (dict(device="tpu"), "device", "auto, cpu, cuda, mps"),
    (dict(optimizer="sgd", batch_size=1001), "batch_size", "n_train = 1000"),
    (dict(batch_size=64), "batch_size", "must be None"),
    (dict(optimizer="sgd", batch_size=0), "batch_size", "[1, inf)"),
    (dict(rho=-0.01), "rho", "[0.0, inf)"),
    (dict(beta=-1.0), "beta", "[0.0, inf)"),
    (dict(probe_every=0), "probe_every", "[1, inf)"),
    (dict(probe_size=0), "probe_size", "[1, 100000]"),
    (dict(n_eigs=0), "n_eigs", "[1, 100]"),
    (dict(eig_tol=0.0), "eig_tol", "(0.0, 1.0)"),
    (dict(eig_tol=1.0), "eig_tol", "(0.0, 1.0)"),
    (dict(eos_fraction=0.0), "eos_fraction", "(0.0, 1.0]"),
    (dict(eos_fraction=1.5), "eos_fraction", "(0.0, 1.0]"),
    (dict(arp_fraction=0.0), "arp_fraction", "(0.0, 1.0]"),
    (dict(arp_fraction=1.01), "arp_fraction", "(0.0, 1.0]"),
    (dict(steps=0), "steps", "[1,"),
    (dict(label_noise=1.0), "label_noise", "[0.0, 1.0)"),
    (dict(label_noise=-0.1), "label_noise", "[0.0, 1.0)"),
    (dict(momentum=1.0), "momentum", "[0.0, 1.0)"),
    (dict(weight_decay=-1e-4), "weight_decay", "[0.0, 3.40282"),
    (dict(n_train=0), "n_train", "[1, 100000]"),
    (dict(n_test=0), "n_test", "[1, 100000]"),
    (dict(width=0), "width", "[1, "),
    (dict(depth=0), "depth", "[1, "),
    (dict(width=100_000), "width", "[1, 4096]"),
    (dict(depth=100), "depth", "[1, 16]"),
    (dict(n_classes=1), "n_classes", "[2, "),
    (dict(noise=-0.5), "noise", "[0.0, inf)"),
    (dict(seed=-1), "seed", "[0, 9223372036854775807]"),
    (dict(seed=2**64), "seed", "[0, 9223372036854775807]"),  # torch.manual_seed overflows
    (dict(data_seed=-3), "data_seed", "[0, 9223372036854775807]"),
    (dict(checkpoint_limit=1), "checkpoint_limit", "[2, 1000]"),
    (dict(divergence_factor=1.0), "divergence_factor", "(1.0, inf)"),
    (dict(divergence_window=0), "divergence_window", "[1, inf)"),
    (dict(n_train="1000"), "n_train", "expected int, got str"),
    (dict(n_train=True), "n_train", "expected int, got bool"),
    (dict(n_train=10.5), "n_train", "expected int, got float"),
    (dict(lr="0.5"), "lr", "expected float, got str"),
    (dict(lr=True), "lr", "expected float, got bool"),
    (dict(standardize=1), "standardize", "expected bool, got int"),
    (dict(dataset=None), "dataset", "expected str"),
    (dict(steps=None), "steps", "expected int"),
    (dict(name=3), "name", "expected str or None"),
    (dict(model="cnn", dataset="moons"), "model", "image dataset"),
    (dict(dataset="mnist"), "data_path", "needs a data_path"),
    (dict(dataset="csv"), "data_path", "needs a data_path"),
]


@pytest.mark.parametrize("changes, field_name, fragment", BAD, ids=lambda x: str(x)[:40])
def test_bad_values_raise_config_error_naming_field_value_and_allowed(changes, field_name,
                                                                     fragment):
    with pytest.raises(ConfigError) as info:
        RunConfig(**changes)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.field == field_name
    msg = str(err)
    assert msg.startswith(f"{field_name}: "), msg
    assert repr(changes.get(field_name, err.value))[:6] in msg
    assert fragment in msg, msg


@pytest.mark.parametrize("name", FLOAT_FIELDS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_rejected_for_every_float_field(name, bad):
    with pytest.raises(ConfigError, match=f"^{name}: .*finite"):
        RunConfig(**{name: bad})


@pytest.mark.parametrize("name", INT_FIELDS)
def test_every_int_field_rejects_str_and_bool(name):
    for bad in ("5", True):
        with pytest.raises(ConfigError, match=f"^{name}: "):
            RunConfig(**{name: bad})


def test_config_error_survives_copying_between_processes():
    import copy

    err = ConfigError("lr", -1.0, "must be positive")
    clone = copy.copy(err)  # uses __reduce__, like multiprocessing does
    assert (clone.field, clone.value, clone.allowed, str(clone)) == (
        "lr", -1.0, "must be positive", str(err))


def test_dataclasses_replace_validates_too():
    with pytest.raises(ConfigError, match="^lr: "):
        dataclasses.replace(RunConfig(), lr=-1.0)
    with pytest.raises(ConfigError, match="^batch_size: "):
        dataclasses.replace(RunConfig(optimizer="sgd", batch_size=10), optimizer="gd")


def test_replace_method_validates_and_rejects_unknown_fields():
    c = RunConfig().replace(lr=0.1, steps=10)
    assert (c.lr, c.steps) == (0.1, 10)
    assert RunConfig().replace() == RunConfig()
    with pytest.raises(ConfigError, match="learning_rate") as info:
        RunConfig().replace(learning_rate=0.1)
    assert info.value.field == "learning_rate"
    with pytest.raises(ConfigError, match="^probe_every: "):
        RunConfig().replace(probe_every=0)


def test_frozen_and_hashable():
    c = RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.lr = 1.0  # type: ignore[misc]
    assert hash(c) == hash(RunConfig()) and c == RunConfig()
    assert len({c, RunConfig(lr=0.1)}) == 2


def test_numbers_are_normalised_to_plain_python_types():
    c = RunConfig(lr=1, n_train=np.int64(800), eig_tol=np.float32(0.01))
    assert type(c.lr) is float and c.lr == 1.0 and c == RunConfig(lr=1.0, n_train=800,
                                                                   eig_tol=float(np.float32(0.01)))
    assert type(c.n_train) is int and type(c.eig_tol) is float
    assert RunConfig(name="").name is None  # empty optional text means "not set"


def test_cuda_index_devices_are_valid_names():
    assert RunConfig(device="cuda:1").device == "cuda:1"
    with pytest.raises(ConfigError, match="^device: "):
        RunConfig(device="cuda:x")


def test_sgd_batch_size_equal_to_n_train_and_none_are_allowed():
    assert RunConfig(optimizer="sgd", batch_size=1000).batch_size == 1000
    assert RunConfig(optimizer="sam", batch_size=None).batch_size is None


# -- round trips ---------------------------------------------------------------------

def _random_config(rng: random.Random) -> RunConfig:
    """A random valid config drawn from the field metadata (a property-test generator)."""
    values = {}
    for f in FIELDS:
        meta, tp = f.metadata, field_help()[f.name]["type"]
        if "choices" in meta:
            values[f.name] = rng.choice(meta["choices"])
        elif tp == "bool":
            values[f.name] = rng.random() < 0.5
        elif tp.startswith("int"):
            lo = meta.get("min", 0)
            values[f.name] = rng.randint(lo, min(meta.get("max", lo + 5000), lo + 5000))
        elif tp == "float":
            lo, hi = meta.get("min", 0.0), meta.get("max", 10.0)
            x = rng.uniform(lo, hi)
            values[f.name] = x if lo < x < hi else (lo + hi) / 2
        else:  # optional text
            values[f.name] = rng.choice([None, "a b&c=d?é", "runs/x.csv"])
    values["model"] = rng.choice(["mlp", "linear"])
    values["dataset"] = rng.choice(["digits", "moons", "csv"])
    values["data_path"] = values["data_path"] or "some/folder"
    values["optimizer"] = rng.choice(OPTIMIZER_NAMES[1:])
    values["batch_size"] = rng.choice([None, rng.randint(1, values["n_train"])])
    values["device"] = rng.choice(["auto", "cpu", "cuda:0"])
    # within LIMITS: the parameter count times checkpoints kept is bounded
    values["width"], values["depth"] = rng.randint(1, 256), rng.randint(1, 4)
    values["checkpoint_limit"] = rng.randint(2, 100)
    return RunConfig(**values)


ROUND_TRIP_CASES = [*PRESETS.values(), *(_random_config(random.Random(i)) for i in range(60))]


@pytest.mark.parametrize("c", ROUND_TRIP_CASES, ids=lambda c: c.name or "random")
def test_round_trips(c):
    assert RunConfig.from_dict(c.to_dict()) == c
    assert RunConfig.from_json(c.to_json()) == c
    assert RunConfig.from_json(c.to_json(indent=None)) == c
    q = c.to_query()
    assert RunConfig.from_query(q) == c
    assert RunConfig.from_query("?" + q) == c
    assert RunConfig.from_query(parse_qs(q, keep_blank_values=True)) == c  # str -> list[str]
    flat = {k: v[-1] for k, v in parse_qs(q, keep_blank_values=True).items()}
    assert RunConfig.from_query(flat) == c  # str -> str, like st.query_params
    for name in PRESETS:
        assert RunConfig.from_query(c.to_query(preset=name)) == c


def test_to_dict_is_driven_by_the_fields_and_json_compatible():
    d = RunConfig().to_dict()
    assert list(d) == [f.name for f in FIELDS]
    assert json.loads(json.dumps(d)) == d


def test_to_query_holds_only_changed_fields():
    assert RunConfig().to_query() == ""
    assert RunConfig(lr=0.1, steps=5).to_query() == "lr=0.1&steps=5"
    q = PRESETS["two-moons"].replace(lr=0.2).to_query(preset="two-moons")
    assert q == "preset=two-moons&lr=0.2"
    assert RunConfig.from_query(q) == PRESETS["two-moons"].replace(lr=0.2)


def test_from_query_parses_strings_and_last_repeated_value_wins():
    c = RunConfig.from_query("lr=0.1&lr=0.25&standardize=false&optimizer=sgd&batch_size=32"
                             "&name=my%20run")
    assert (c.lr, c.standardize, c.batch_size, c.name) == (0.25, False, 32, "my run")
    assert RunConfig.from_query({"batch_size": "none", "optimizer": "sgd"}).batch_size is None
    assert RunConfig.from_query({"standardize": ["1", "no"]}).standardize is False
    assert RunConfig.from_query("lr=0.1", base=PRESETS["two-moons"]).dataset == "moons"
    assert RunConfig.from_query("page=inspect&lr=0.2", strict=False) == RunConfig(lr=0.2)
    with pytest.raises(ConfigError, match="'page'"):
        RunConfig.from_query("page=inspect&lr=0.2")


@pytest.mark.parametrize("query, field_name", [
    ("lr=abc", "lr"), ("steps=1.5", "steps"), ("standardize=maybe", "standardize"),
    ("stepz=3", "stepz"), ("preset=nope", "preset"), ("lr=nan", "lr"), ("steps=", "steps"),
])
def test_from_query_errors_name_the_field(query, field_name):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_query(query)
    assert info.value.field == field_name
    assert str(info.value).startswith(f"{field_name}: ")


def test_from_query_partial_keeps_good_entries_and_reports_each_bad_one():
    config, errors = RunConfig.from_query_partial(
        "preset=two-moons&lr=0.3&steps=abc&width=-3&utm_source=mail")
    assert config == PRESETS["two-moons"].replace(lr=0.3)
    assert sorted(e.field for e in errors) == ["steps", "utm_source", "width"]
    # a bad preset name is reported, the other entries still apply to the defaults
    config, errors = RunConfig.from_query_partial("preset=nope&lr=0.2")
    assert config == RunConfig(lr=0.2) and [e.field for e in errors] == ["preset"]
    # entries valid only together are applied together (n_train 50 < the preset's batch 64)
    ejr = PRESETS["ejr-vs-sam"]
    config, errors = RunConfig.from_query_partial(
        "preset=ejr-vs-sam&n_train=50&batch_size=32&lr=x")
    assert config == ejr.replace(batch_size=32, n_train=50) and [e.field for e in errors] == ["lr"]
    # a combination that cannot hold: the entry that breaks it is the one left out
    config, errors = RunConfig.from_query_partial("optimizer=sgd&batch_size=2000&n_train=500")
    assert [e.field for e in errors] == ["batch_size"]
    assert (config.optimizer, config.n_train, config.batch_size) == ("sgd", 500, None)
    # the entry left out is the one named, even when the validator names the other field
    config, errors = RunConfig.from_query_partial("preset=ejr-vs-sam&optimizer=gd&batch_size=32")
    assert (config.optimizer, config.batch_size) == ("ejr", 32)
    assert [e.field for e in errors] == ["optimizer"] and "left out (batch_size" in str(errors[0])
    RunConfig.from_dict({}, base=config)  # what is returned is itself valid
    assert RunConfig.from_query_partial("")[1] == []


def test_from_dict_rejects_unknown_keys_and_non_mappings():
    with pytest.raises(ConfigError, match="'lrate'.*known fields: dataset, n_train"):
        RunConfig.from_dict({"lr": 0.1, "lrate": 0.2})
    with pytest.raises(ConfigError):
        RunConfig.from_dict([("lr", 0.1)])
    assert RunConfig.from_dict({"lr": 0.1}) == RunConfig(lr=0.1)


def test_from_json_rejects_malformed_text():
    with pytest.raises(ConfigError, match="JSON"):
        RunConfig.from_json("{not json")
    with pytest.raises(ConfigError, match="mapping"):
        RunConfig.from_json("[1, 2]")


# -- presets and metadata ------------------------------------------------------------

def test_presets_exist_and_are_named_after_their_key():
    assert {"edge-of-stability", "sgd-vs-gd", "ejr-vs-sam", "two-moons", "lr-sweep"} <= set(
        PRESETS)
    for key, c in PRESETS.items():
        assert isinstance(c, RunConfig) and c.name == key


def test_preset_settings():
    eos = PRESETS["edge-of-stability"]
    assert (eos.dataset, eos.n_train, eos.label_noise, eos.model, eos.width, eos.depth,
            eos.activation, eos.optimizer, eos.lr, eos.steps, eos.probe_every) == (
        "digits", 1000, 0.5, "mlp", 128, 2, "tanh", "gd", 0.3, 800, 25)
    sgd = PRESETS["sgd-vs-gd"]
    assert sgd.optimizer == "sgd" and sgd.batch_size == 32 and sgd.lr == RunConfig().lr
    ejr = PRESETS["ejr-vs-sam"]
    assert ejr.optimizer == "ejr" and ejr.rho > 0 and ejr.batch_size is not None
    moons = PRESETS["two-moons"]
    assert moons.dataset == "moons" and moons.optimizer == "gd"
    assert PRESETS["lr-sweep"].probe_every < eos.probe_every


def test_field_metadata_covers_every_field():
    meta = field_help()
    assert list(meta) == [f.name for f in FIELDS]
    for name, m in meta.items():
        assert m["group"] in GROUPS and m["help"], name
        assert m["default"] == getattr(RunConfig(), name)
    groups = fields_by_group()
    assert list(groups) == list(GROUPS)
    assert sorted(sum(groups.values(), [])) == sorted(meta)
    assert meta["dataset"]["choices"] == DATASET_NAMES
    assert meta["lr"]["min"] == 0.0 and meta["lr"]["min_open"]


def test_registries_use_exactly_the_config_names():
    from ijr_core.data import DATASETS
    from ijr_core.models import ACTIVATIONS, MODELS
    from ijr_core.optimizers import OPTIMIZERS

    assert tuple(DATASETS) == DATASET_NAMES
    assert tuple(MODELS) == MODEL_NAMES
    assert tuple(ACTIVATIONS) == ACTIVATION_NAMES
    assert set(OPTIMIZERS) == set(OPTIMIZER_NAMES)


def test_relevant_fields_follow_the_when_metadata():
    default = set(RunConfig().relevant_fields())
    assert {"lr", "steps", "width", "seed"} <= default
    assert not default & {"rho", "beta", "batch_size", "noise", "n_classes", "data_path",
                          "csv_label_column"}
    ejr = set(PRESETS["ejr-vs-sam"].relevant_fields())
    assert {"rho", "batch_size"} <= ejr and "beta" not in ejr
    blobs = set(RunConfig(dataset="blobs", model="linear").relevant_fields())
    assert {"noise", "n_classes"} <= blobs and not blobs & {"width", "depth", "activation"}
    csv = set(RunConfig(dataset="csv", data_path="x.csv").relevant_fields())
    assert {"data_path", "csv_label_column"} <= csv and "noise" not in csv
    for f in FIELDS:  # every `when` refers to real fields and real values
        for k, allowed in f.metadata.get("when", {}).items():
            assert set(allowed) <= set(field_help()[k]["choices"]), (f.name, k)


# -- devices -------------------------------------------------------------------------

def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    auto = resolve_device("auto")
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert auto.type == expected
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
    else:
        with pytest.raises(ConfigError, match="^device: 'cuda'.*not available"):
            resolve_device("cuda")
    if not torch.backends.mps.is_available():
        with pytest.raises(ConfigError, match="^device: 'mps'"):
            resolve_device("mps")
    with pytest.raises(ConfigError, match="known device names"):
        resolve_device("gpu")


@pytest.mark.parametrize("name, probe_steps", [
    ("edge-of-stability", (325, 350, 375, 400)),
    ("two-moons", (150, 175, 200, 225)),
])
def test_gd_presets_reach_the_edge_of_stability(name, probe_steps):
    """Plain full-batch GD on the preset: the sharpness ‖H‖ starts below 2/η and reaches
    at least 0.9 · 2/η within the steps measured when the preset was chosen."""
    from ijr_core.curvature import loss_fn, sharpness
    from ijr_core.data import load_dataset
    from ijr_core.models import build_model

    c = PRESETS[name]
    data = load_dataset(c)
    model = build_model(c, data)
    X, y, loss = data.X_train, data.y_train, loss_fn(c.loss)
    opt = torch.optim.SGD(model.parameters(), lr=c.lr)
    first = float(sharpness(model, X, y)[0])
    peak = 0.0
    for step in range(1, max(probe_steps) + 1):
        opt.zero_grad()
        loss(model(X), y).backward()
        opt.step()
        if step in probe_steps:
            peak = max(peak, float(sharpness(model, X, y)[0]))
    assert first < 0.5 * 2 / c.lr
    assert peak >= 0.9 * 2 / c.lr, (name, first, peak)


def test_usable_cores_counts_the_cores_this_process_may_use():
    import os

    from ijr_core.config import usable_cores

    assert 1 <= usable_cores() <= (os.cpu_count() or 1)
    if hasattr(os, "sched_getaffinity"):
        assert usable_cores() == len(os.sched_getaffinity(0))
