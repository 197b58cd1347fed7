"""Property tests: random valid DAGs validate; a random cycle or dangling `after` is always refused."""

from __future__ import annotations

import io

import networkx as nx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from orchestrator.definition import SourceError, load_definition

DEPARTMENTS = ["zwfw", "scjg", "gaj", "swj", "rsj", "zjj", "xf"]


@st.composite
def random_dags(draw: st.DrawFn) -> dict:
    count = draw(st.integers(min_value=2, max_value=14))
    steps = [{"id": "s0", "kind": "acceptance", "name": "受理", "department": "zwfw", "limit": "1h"}]
    for index in range(1, count):
        after = draw(st.lists(st.integers(0, index - 1), min_size=1, max_size=3, unique=True))
        steps.append(
            {
                "id": f"s{index}",
                "kind": "approval",
                "name": f"步骤{index}",
                "department": draw(st.sampled_from(DEPARTMENTS)),
                "after": [f"s{a}" for a in sorted(after)],
                "limit": draw(st.sampled_from(["1h", "2h", "0.5d", "1d"])),
            }
        )
    return {"key": "t", "name": "随机", "limits": {"promised": "15d"}, "remedy": "可申请行政复议", "steps": steps}


def dump(document: dict) -> str:
    stream = io.StringIO()
    YAML().dump(document, stream)
    return stream.getvalue()


def check(document: dict, departments) -> list[str]:
    try:
        load_definition("t.yaml", departments, text=dump(document))
    except SourceError as exc:
        return [p.message for p in exc.problems]
    return []


def graph_of(document: dict) -> nx.DiGraph:
    graph = nx.DiGraph()
    for step in document["steps"]:
        graph.add_node(step["id"])
        graph.add_edges_from((before, step["id"]) for before in step.get("after", []))
    return graph


common = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@common
@given(random_dags())
def test_random_valid_dags_validate(departments, document):
    assert check(document, departments) == []


@common
@given(random_dags(), st.data())
def test_an_edge_that_closes_a_cycle_is_refused(departments, document, data):
    graph = graph_of(document)
    # pick a step and one of its descendants; make the step wait for that descendant
    candidates = [(a, b) for a in graph if a != "s0" for b in nx.descendants(graph, a)]
    if not candidates:
        candidates = [(a, a) for a in graph if a != "s0"]
    early, late = data.draw(st.sampled_from(candidates))
    step = next(s for s in document["steps"] if s["id"] == early)
    step["after"] = [*step["after"], late]
    messages = check(document, departments)
    assert messages
    if early == late:
        assert f"step {early!r} waits for itself" in messages
    else:
        cycles = [m for m in messages if m.startswith("cycle: ")]
        assert len(cycles) == 1
        assert early in cycles[0] and late in cycles[0]


@common
@given(random_dags(), st.data(), st.text(alphabet="qwxz", min_size=3, max_size=6))
def test_a_dangling_after_is_refused(departments, document, data, ghost):
    step = data.draw(st.sampled_from(document["steps"][1:]))
    step["after"] = [*step["after"], ghost]
    messages = check(document, departments)
    assert any(m.startswith(f"step {step['id']!r}: after names unknown step {ghost!r}") for m in messages), messages
    assert len(messages) == 1  # no cascade of unreachable-step messages
