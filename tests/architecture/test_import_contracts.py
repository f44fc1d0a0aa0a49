"""The import contracts in .importlinter (run by `lint-imports` in `make test` too): kept by
the tree as it is, and each one broken by an import planted in the real import graph, so
none of them passes by matching nothing."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grimp
import pytest
from importlinter import configuration
from importlinter.adapters.building import GraphBuilder
from importlinter.application.app_config import settings
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ("layers", "config", "services", "agent_api", "agent", "acyclic")
LAYERS, CONFIG, SERVICES, AGENT_API, AGENT, ACYCLIC = CONTRACTS


class PlantingBuilder(GraphBuilder):
    """The real graph, plus one import that the tree does not have."""

    def __init__(self, importer: str, imported: str) -> None:
        self.planted = (importer, imported)

    def build(self, *args: Any, **kwargs: Any) -> grimp.ImportGraph:
        graph = super().build(*args, **kwargs)
        graph.add_import(importer=self.planted[0], imported=self.planted[1])
        return graph


@pytest.fixture
def lint(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Run `lint-imports` on some contracts, the graph optionally with an import planted;
    returns the exit code (0: every contract kept)."""
    monkeypatch.chdir(ROOT)
    configuration.configure()

    def run(contracts: tuple[str, ...], planted: tuple[str, str] | None = None) -> int:
        if planted is not None:
            settings.configure(GRAPH_BUILDER=PlantingBuilder(*planted))
        try:
            return lint_imports(no_cache=True, no_logo=True, limit_to_contracts=contracts)
        finally:
            configuration.configure()

    yield run


def test_every_contract_is_kept(lint: Any) -> None:
    assert lint(CONTRACTS) == 0


# A service importing what imports services (tasks, the API, views) is also a circle.
@pytest.mark.parametrize(
    ("planted", "broken"),
    [
        (("banking.services.ledger", "scheduler.models"), {LAYERS}),
        (("core.errors", "banking.error_codes"), {LAYERS}),
        (("scheduler.services.jobs", "marketplace.models"), {LAYERS}),
        (("marketplace.services.blocks", "config.settings"), {CONFIG}),
        (("scheduler.services.jobs", "scheduler.tasks"), {SERVICES, ACYCLIC}),
        (("banking.selectors", "banking.api.authentication"), {SERVICES, ACYCLIC}),
        (("marketplace.services.deposits", "marketplace.views.provider"), {SERVICES, ACYCLIC}),
        # scheduler.api.views imports the fast path: back is a circle too.
        (("scheduler.agent_api.heartbeat", "scheduler.api.views"), {AGENT_API, ACYCLIC}),
        (("scheduler.services.nodes", "scheduler.agent_api.bodies"), {SERVICES, ACYCLIC}),
        (("suanli_agent.gpus", "django"), {AGENT}),
        (("suanli_agent.runner", "scheduler.models"), {AGENT}),
        # scheduler.services.jobs imports scheduler.services.settlement: back is a circle.
        (("scheduler.services.settlement", "scheduler.services.jobs"), {ACYCLIC}),
    ],
)
def test_a_planted_import_breaks_its_contracts_and_only_them(
    lint: Any, planted: tuple[str, str], broken: set[str]
) -> None:
    kept = tuple(c for c in CONTRACTS if c not in broken)
    assert [lint((c,), planted) for c in sorted(broken)] == [1] * len(broken)
    assert lint(kept, planted) == 0
