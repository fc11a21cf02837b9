"""The scenario runner's own evidence: a holder sampler that died, or never sampled, fails
the scenario instead of reading as "no two holders" (no lab: the cluster and client are
stand-ins, the sampler is the real one with a lab whose namespaces are gone)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gossipha.lab import observe, scenarios
from gossipha.lab.observe import HolderSampler
from gossipha.lab.scenarios import FAST, Run, Scenario, run_scenario
from gossipha.lab.topology import LabError


class GoneLab:
    """A lab whose namespaces were torn down: opening one raises, as netlink would."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def ns(self, node: str) -> str:
        raise LabError(f"no namespace for {node}: the lab was torn down")


class StandInCluster:
    """What run_scenario asks of a cluster, with master serving throughout."""

    def __init__(self, lab: GoneLab) -> None:
        self.lab = lab
        self.profile = FAST

    def ensure_baseline(self, *, second_link: bool = False) -> None:
        del second_link

    def holders(self) -> tuple[str, ...]:
        return ("master",)

    def log_tail(self, node: str, lines: int = 15) -> str:
        del lines
        return f"({node}: no log)"


class AnsweredClient:
    """A client whose log says master answered every 20 ms."""

    def __init__(self, lab: GoneLab, *, duration_s: float) -> None:
        del duration_s
        self.log_path = lab.workdir / "client.jsonl"

    def start(self) -> None:
        lines = (
            json.dumps({"t": 100.0 + i * 0.02, "who": "master", "lat": 0.001}) for i in range(50)
        )
        self.log_path.write_text("\n".join(lines) + "\n")

    def stop(self) -> None:
        pass

    def samples(self) -> list[scenarios.ClientSample]:
        return scenarios.read_client_log(self.log_path)


def _nothing_happens(run: Run) -> None:
    with run.step("nothing happens"):
        pass


QUIET = Scenario("quiet", "a scenario that changes nothing", _nothing_happens)


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> scenarios.Result:
    monkeypatch.setattr(scenarios, "Client", AnsweredClient)
    cluster = StandInCluster(GoneLab(tmp_path))
    return run_scenario(cluster, QUIET)  # type: ignore[arg-type]


def test_a_sampler_whose_thread_raised_fails_the_scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run(tmp_path, monkeypatch)
    assert result.dual_holder_instants == 0  # what a dead sampler reads as
    assert result.passed is False
    assert result.error is not None and "holder sampler failed" in result.error
    assert "LabError" in result.error and "torn down" in result.error
    assert result.as_json()["holder_samples"] == 0
    assert result.lab_error == result.error  # the lab failed to measure, not the cluster


def test_a_sampler_that_collected_nothing_fails_the_scenario(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Idle(HolderSampler):
        def _run(self) -> None:  # ends at once: no error, no sample
            return

    monkeypatch.setattr(scenarios, "HolderSampler", Idle)
    result = _run(tmp_path, monkeypatch)
    assert result.passed is False
    assert result.error == "holder sampler collected no samples"


def test_failure_names_the_samplers_error_first(tmp_path: Path) -> None:
    sampler = HolderSampler(GoneLab(tmp_path))  # type: ignore[arg-type]
    assert sampler.failure() == "holder sampler collected no samples"
    sampler.error = OSError("netlink socket closed")
    assert sampler.failure() == "holder sampler failed: OSError: netlink socket closed"


async def test_observe_raises_when_its_sampler_died(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class NoRequests:
        def __init__(self, lab: GoneLab, **_: object) -> None:
            del lab

        async def run(self) -> list[scenarios.ClientSample]:
            return []

    monkeypatch.setattr(observe, "Client", NoRequests)
    with pytest.raises(LabError, match="holder sampler failed: LabError"):
        await observe.observe(GoneLab(tmp_path), 5.0)  # type: ignore[arg-type]
