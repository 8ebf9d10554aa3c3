"""One declaration and one meaning per option: the batching settings, a sweep's cells, and the
old spellings of options that used to mean two things."""

import dataclasses
import logging

import pytest

from hubstress_ext.batching.batcher import BatchSettings
from hubstress_ext.batching.config import HubstressBatching
from hubstress_ext.engine.argv import parse_scenario_argv
from hubstress_ext.engine.registry import make_run
from hubstress_ext.loadgen.options import ENDPOINT_FIELDS, EndpointOptions, SweepOptions
from hubstress_ext.notebook.magics import cell_values

URL = "http://127.0.0.1:1/hubstress/batch"


def test_every_batcher_setting_is_a_trait_with_its_default_and_help():
    traits = HubstressBatching.class_traits(config=True)
    for f in dataclasses.fields(BatchSettings):
        assert traits[f.name].default_value == f.default and traits[f.name].help == f.metadata["help"]
    # built by name, so no two settings can swap places
    configured = HubstressBatching(max_queue=7, batch_size=3, refuse_status=429).settings()
    assert (configured.batch_size, configured.max_queue, configured.refuse_status) == (3, 7, 429)


def test_a_sweep_cell_carries_every_endpoint_option():
    own = {f.name for f in dataclasses.fields(EndpointOptions)}
    assert set(ENDPOINT_FIELDS) == own - {"save", "verbose", "slo", "junit", "dask", "allow_lost_shards"}
    sweep = SweepOptions(
        url=URL, method="PUT", request_timeout=2.5, token="t0k", template={"a": 1}, duration=3
    ).resolve()
    cell = sweep.cell(16)
    assert all(getattr(cell, name) == getattr(sweep, name) for name in ENDPOINT_FIELDS)
    assert cell.workers == 16 and cell.duration == 3 and cell.save is None


@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        (["stress-test", "--sandbox", "--timeout", "60"], "run_timeout", 60.0),
        (["bench", URL, "--timeout", "2"], "request_timeout", 2.0),
        (["sweep", URL, "--batch-size", "1,8"], "batch_sizes", [1, 8]),
    ],
)
def test_old_spellings_still_work_and_say_the_new_one(argv, field, value, caplog):
    caplog.set_level(logging.WARNING, logger="hubstress")
    name, values = parse_scenario_argv(argv)
    assert values[field] == value
    new_flag = "--" + field.replace("_", "-")
    assert any(new_flag in r.getMessage() and "old name" in r.getMessage() for r in caplog.records)
    assert getattr(make_run(name, **values).options, field) == value


def test_old_names_in_code_and_cells(caplog):
    caplog.set_level(logging.WARNING, logger="hubstress")
    assert make_run("bench", url=URL, timeout=3).options.request_timeout == 3.0
    assert make_run("stress-test", sandbox=True, timeout=9).options.run_timeout == 9.0
    _, values, _ = cell_values(f"sweep {URL}", "batch_size = 1,4")
    assert values["batch_sizes"] == [1, 4]
    assert sum("old name" in r.getMessage() for r in caplog.records) == 3


def test_each_new_name_has_one_meaning():
    assert "--timeout" not in parse_scenario_argv(["bench", URL, "--request-timeout", "1"])[1]
    with pytest.raises(Exception, match="run-timeout"):
        parse_scenario_argv(["bench", URL, "--run-timeout", "1"])
