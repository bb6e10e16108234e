"""Item order and placement under xdist: predicted costs from the case library, one item handed out at a time."""
from __future__ import annotations

import pytest

from conformance.cases.case import Item
from conformance.cases.loader import load_file
from conformance.plugin import scheduling
from tests.conftest import REPO


def _items(name: str) -> dict[str, Item]:
    out = {}
    for case in load_file(REPO / "cases" / name, f"cases/{name}"):
        for device in case.devices:
            for dtype in case.dtypes:
                out[f"{case.id}[{device}-{dtype}]"] = Item(case, device, dtype)
    return out


def test_costs_follow_steps_sides_and_what_can_run_here(monkeypatch):
    monkeypatch.setattr(scheduling, "gpu_runs", lambda: False)
    matrix, replay = _items("frameworks_matrix.yaml"), _items("replay.yaml")
    long_horizon = _items("long_horizon.yaml")
    cost = scheduling.cost
    # 3,000 steps of five or more implementations outweigh 1,000 steps of a pair (steps x parameters did not)
    assert cost(matrix["matrix_long_horizon[cpu-float32]"]) > cost(replay["replay_matched_1000[cpu-float32]"])
    assert cost(long_horizon["long_horizon_beta1_0999_10k[cpu-float32]"]) > \
        cost(long_horizon["beta1_power_underflow[cpu-float32]"]) > 0
    # without a GPU a GPU item is a skip, whatever its size; with one (or the CPU rehearsal) it is not
    gpu = _items("gpu_variants.yaml")["gpu_large_tensor_float32[gpu-float32]"]
    assert cost(gpu) == 0.0
    monkeypatch.setattr(scheduling, "gpu_runs", lambda: True)
    assert cost(gpu) > cost(long_horizon["long_horizon_beta1_0999_10k[cpu-float32]"])
    # frameworks that are not installed add nothing
    monkeypatch.setattr(scheduling, "installed", lambda name: name in ("torch", "mindspore"))
    fewer = cost(matrix["matrix_long_horizon[cpu-float32]"])
    monkeypatch.setattr(scheduling, "installed", lambda name: True)
    assert cost(matrix["matrix_long_horizon[cpu-float32]"]) > fewer


class _Node:
    def __init__(self, name: str):
        self.name, self.shutting_down, self.sent = name, False, []
        self.gateway = type("Gateway", (), {"id": name})()

    def send_runtest_some(self, indices):
        self.sent.extend(indices)

    def shutdown(self):
        self.shutting_down = True


class _Config:
    def getvalue(self, name):
        return ["2*popen"] if name == "tx" else None

    def getoption(self, name, default=None):
        return None if name == "maxschedchunk" else default


def test_one_ahead_hands_out_one_item_at_a_time_to_whichever_worker_frees_first():
    pytest.importorskip("xdist")
    sched = scheduling.one_ahead_scheduler(_Config(), None)
    nodes = [_Node("gw0"), _Node("gw1")]
    collection = [f"cases/a.yaml::item{i}" for i in range(8)]  # in cost order, longest first
    for node in nodes:
        sched.add_node(node)
        sched.add_node_collection(node, collection)
    sched.schedule()
    # the two longest on different workers, each holding one running and one queued item
    assert nodes[0].sent == [0, 2] and nodes[1].sent == [1, 3]
    sched.mark_test_complete(nodes[1], 1, 0.5)  # gw1 finished first: the next longest goes to it
    assert nodes[1].sent == [1, 3, 4] and nodes[0].sent == [0, 2]
    for index in (3, 4):
        sched.mark_test_complete(nodes[1], index, 0.5)
    assert nodes[1].sent == [1, 3, 4, 5, 6] and sched.pending == [7]
    sched.mark_test_complete(nodes[0], 0, 3.0)
    assert nodes[0].sent == [0, 2, 7] and not sched.pending
    sched.mark_test_complete(nodes[0], 2, 0.1)
    assert nodes[0].shutting_down


def test_items_of_a_less_common_dtype_stay_on_the_worker_that_compiled_for_it():
    pytest.importorskip("xdist")
    sched = scheduling.one_ahead_scheduler(_Config(), None)
    nodes = [_Node("gw0"), _Node("gw1")]
    dtypes = ["float32", "float64", "float32", "float32", "float64", "float16", "float32", "float64"]
    collection = [f"cases/a.yaml::item{i}[cpu-{d}]" for i, d in enumerate(dtypes)]
    for node in nodes:
        sched.add_node(node)
        sched.add_node_collection(node, collection)
    sched.schedule()
    assert nodes[0].sent == [0, 2] and nodes[1].sent == [1, 3]  # gw1 took the first float64 item
    sched.mark_test_complete(nodes[0], 0, 1.0)  # gw0 frees first: it skips the float64 item 4 (gw1's)
    assert nodes[0].sent == [0, 2, 5] and sched.pending == [4, 6, 7]
    sched.mark_test_complete(nodes[1], 1, 1.0)
    assert nodes[1].sent == [1, 3, 4]
    sched.mark_test_complete(nodes[0], 2, 1.0)
    assert nodes[0].sent == [0, 2, 5, 6] and sched.pending == [7]
    sched.mark_test_complete(nodes[0], 5, 1.0)  # only gw1's float64 item is left: taken, no worker waits
    assert nodes[0].sent == [0, 2, 5, 6, 7]
    assert scheduling.compile_key("cases/a.yaml::x[gpu-float16]") == "float16"
    assert scheduling.compile_key("tests/plugin/test_scheduling.py::test_x") is None


def test_the_main_job_and_the_tests_env_use_it_unless_another_dist_is_asked_for():
    from conformance import plugin

    class Config(_Config):
        def __init__(self, dist):
            self.dist = dist

        def getoption(self, name, default=None):
            return self.dist if name == "dist" else super().getoption(name, default)

    pytest.importorskip("xdist")
    assert type(plugin.pytest_xdist_make_scheduler(Config("load"), None)).__name__ == "OneAhead"
    assert plugin.pytest_xdist_make_scheduler(Config("worksteal"), None) is None
