"""Property tests of the pure DAG advance (orchestrator/engine/dag.py) on random definitions.

Definitions are built in memory: an acceptance entry and approval steps, each waiting on one to
three earlier steps, some with a random ``when`` over the form. The file order of the steps is
shuffled, so ``advance`` has to find the topological order itself. An oracle computed here, from
the raw step lists, says which steps a finished case has completed and which it has skipped.
"""

from __future__ import annotations

from typing import Any

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.definition.model import Definition
from orchestrator.engine import dag

DONE = {"completed", "skipped"}


def _cmp(value: Any, limit: int) -> bool:
    return value > limit  # raises TypeError when the field is empty (None): the engine skips the step


# Each condition with a plain-Python meaning, so the oracle does not go through the expression evaluator.
WHENS: dict[str, Any] = {
    "f0": lambda f: bool(f["f0"]),
    "not f0": lambda f: not f["f0"],
    "f1": lambda f: bool(f["f1"]),
    "f0 and f1": lambda f: bool(f["f0"] and f["f1"]),
    "f1 or f2": lambda f: bool(f["f1"] or f["f2"]),
    "not f2": lambda f: not f["f2"],
    "n > 1": lambda f: _cmp(f["n"], 1),
}

common = settings(max_examples=200, deadline=None)


@st.composite
def definitions(draw: st.DrawFn, min_steps: int = 2, max_steps: int = 10) -> Definition:
    count = draw(st.integers(min_steps, max_steps))
    steps: list[dict[str, Any]] = [{"id": "s0", "kind": "acceptance", "name": "受理", "department": "zwfw"}]
    for index in range(1, count):
        after = draw(st.lists(st.integers(0, index - 1), min_size=1, max_size=min(3, index), unique=True))
        step: dict[str, Any] = {
            "id": f"s{index}",
            "kind": "approval",
            "name": f"步骤{index}",
            "department": "scjg",
            "after": [f"s{a}" for a in after],
        }
        if draw(st.integers(0, 3)) == 0:
            step["when"] = draw(st.sampled_from(sorted(WHENS)))
        steps.append(step)
    steps = draw(st.permutations(steps))  # file order need not be topological
    return Definition.model_validate(
        {
            "key": "dag-test",
            "name": "随机流程",
            "form": [
                {"key": "f0", "label": "条件0", "type": "bool"},
                {"key": "f1", "label": "条件1", "type": "bool"},
                {"key": "f2", "label": "条件2", "type": "bool"},
                {"key": "n", "label": "数量", "type": "int"},
            ],
            "steps": steps,
        }
    )


forms = st.fixed_dictionaries(
    {
        "f0": st.sampled_from([True, False, None]),
        "f1": st.booleans(),
        "f2": st.booleans(),
        "n": st.sampled_from([None, 0, 1, 2, 5]),
    }
)


def _when_holds(step: Any, form: dict[str, Any]) -> bool:
    if step.when is None:
        return True
    try:
        return WHENS[step.when.source](form)
    except TypeError:
        return False


def _expected_final(definition: Definition, form: dict[str, Any]) -> dict[str, str]:
    """The oracle: a step runs when some predecessor ran and its condition holds; else it is skipped."""
    result: dict[str, str] = {}

    def state(step_id: str) -> str:
        if step_id not in result:
            step = definition.steps_by_id[step_id]
            if not step.after:
                result[step_id] = "completed"
            else:
                ran = any(state(b) == "completed" for b in step.after)
                result[step_id] = "completed" if ran and _when_holds(step, form) else "skipped"
        return result[step_id]

    for step in definition.steps:
        state(step.id)
    return result


def _check_moves(definition: Definition, states: dict[str, str], moves: list[dag.Move], form: dict) -> dict[str, str]:
    """Each move is allowed at its point in the list; returns the states with the moves applied."""
    current = dict(states)
    for move in moves:
        step = definition.steps_by_id[move.step_id]
        assert current.get(move.step_id, dag.PENDING) == dag.PENDING, f"{move} moves a step that is not pending"
        assert step.after, "the entry is never moved by advance"
        before = [current.get(b, dag.PENDING) for b in step.after]
        assert all(s in DONE for s in before), f"{move}: join fired early, predecessors are {before}"
        dead = all(s == "skipped" for s in before)
        if dead:
            assert move == dag.Move(step.id, "skipped", "dead_path"), move
        elif not _when_holds(step, form):
            assert move.state == "skipped", f"{move}: its `when` {step.when.source!r} is false"
            assert move.reason == "when_false" or move.reason.startswith("when_error"), move
        else:
            assert move == dag.Move(step.id, "ready", "ready"), move
        current[move.step_id] = move.state
    return current


@common
@given(definitions(), forms, st.data())
def test_random_completion_orders_fire_joins_only_when_all_predecessors_are_done(definition, form, data):
    entry = definition.entry.id
    states = {entry: "completed"}
    completed_order = [entry]
    while True:
        moves = dag.advance(definition, states, form)
        states = _check_moves(definition, states, moves, form)
        assert dag.advance(definition, states, form) == [], "advance is idempotent"
        ready = sorted(step_id for step_id, state in states.items() if state == "ready")
        if not ready:
            break
        chosen = data.draw(st.sampled_from(ready), label="complete")
        states[chosen] = "completed"
        completed_order.append(chosen)
    assert dag.is_finished(definition, states)
    assert states == _expected_final(definition, form)
    # in the order steps were completed, each completed step came after all its completed predecessors
    position = {step_id: i for i, step_id in enumerate(completed_order)}
    for step_id in completed_order[1:]:
        for before in definition.steps_by_id[step_id].after:
            assert states[before] == "skipped" or position[before] < position[step_id]


@common
@given(definitions(), forms)
def test_dead_paths_and_false_conditions_skip(definition, form):
    """Completing everything that becomes ready: the final states obey dead-path elimination."""
    states = {definition.entry.id: "completed"}
    while True:
        for move in dag.advance(definition, states, form):
            states[move.step_id] = move.state
        ready = [s for s, state in states.items() if state == "ready"]
        if not ready:
            break
        states.update(dict.fromkeys(ready, "completed"))
    for step in definition.steps:
        if not step.after:
            continue
        before = [states[b] for b in step.after]
        if all(s == "skipped" for s in before):
            assert states[step.id] == "skipped", f"{step.id}: every predecessor skipped, so it is skipped"
        if not _when_holds(step, form):
            assert states[step.id] == "skipped", f"{step.id}: `when` is false, so it is skipped"
        if any(s == "completed" for s in before) and _when_holds(step, form):
            assert states[step.id] == "completed", f"{step.id}: reached and its condition holds, so it runs"


STEP_STATES = st.sampled_from([dag.PENDING, "open", "completed", "skipped", "cancelled"])


@common
@given(definitions(), forms, st.data())
def test_advance_from_any_states_is_sound_complete_and_idempotent(definition, form, data):
    """Any mix of step states (as after 退回, 撤回 or a cancellation): every move is allowed, nothing
    that could move is left behind, and a second call moves nothing."""
    states = {definition.entry.id: data.draw(st.sampled_from(["completed", "open", dag.PENDING]))}
    for step in definition.steps:
        if step.after:
            state = data.draw(STEP_STATES, label=step.id)
            if state != dag.PENDING or data.draw(st.booleans()):
                states[step.id] = state  # a pending step may be absent or explicitly pending
    moves = dag.advance(definition, states, form)
    assert len({m.step_id for m in moves}) == len(moves), "each step moves at most once"
    after = _check_moves(definition, states, moves, form)
    for step in definition.steps:
        if step.after and after.get(step.id, dag.PENDING) == dag.PENDING:
            assert not all(after.get(b, dag.PENDING) in DONE for b in step.after), f"{step.id} was left behind"
    assert dag.advance(definition, after, form) == []
    assert dag.is_finished(definition, after) == all(after.get(s.id) in DONE for s in definition.steps)


def _graph(definition: Definition) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(step.id for step in definition.steps)
    graph.add_edges_from((before, step.id) for step in definition.steps for before in step.after)
    return graph


@common
@given(definitions(), st.data())
def test_between_returns_exactly_the_steps_on_paths(definition, data):
    ids = [step.id for step in definition.steps]
    start = data.draw(st.sampled_from(ids), label="start")
    end = data.draw(st.sampled_from(ids), label="end")
    on_paths: set[str] = set()
    for path in nx.all_simple_paths(_graph(definition), start, end):
        on_paths.update(path[1:-1])
    found = dag.between(definition, start, end)
    assert len(found) == len(set(found))
    assert set(found) == on_paths
    assert found == [s for s in ids if s in on_paths], "in file order"


@common
@given(definitions(min_steps=3), st.data())
def test_between_entry_and_any_step_is_all_its_ancestors_but_the_entry(definition, data):
    graph = _graph(definition)
    end = data.draw(st.sampled_from([s.id for s in definition.steps if s.after]))
    assert set(dag.between(definition, definition.entry.id, end)) == nx.ancestors(graph, end) - {definition.entry.id}
