"""BPMN 2.0 generated from a Tongban definition, so SpiffWorkflow runs the process our engine runs (bench only).

One signature in our engine is one Spiff userTask:

* acceptance / approval / issue: one userTask, id = step id. A ``review_chain`` is one userTask per level
  in sequence (``<step>__level1`` …); a survey's participants or a countersign's (``sign: all``) signers
  are parallel userTasks (``<step>__<who>``) between ``<step>__fork`` and ``<step>__merge``. ``sign: any``
  is one userTask.
* notify and auto: a scriptTask, as our engine completes them by itself; an auto step with
  ``result_field`` writes its rule's value for later conditions (its ``on_false: reject`` is not modelled).
* ``after``: a step with several predecessors sits behind ``<step>__join``; a step with several successors,
  or a conditional one, is followed by ``<step>__split``. A split with a conditional successor is an
  inclusiveGateway whose flows carry the successor's ``when`` (Python, evaluated over the task data, where
  the form is); Spiff 3.2 wants a condition on every non-default flow of an inclusive gateway, so an
  unconditional successor's flow has ``True``. If every successor is conditional, the default flow goes to
  an end event (all of them skipped). A join is inclusive when one of its paths can be skipped (a ``when``
  upstream), so a skipped step is never reached and dead-path elimination follows; else parallel.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import cache
from itertools import pairwise
from typing import Any

from orchestrator.definition.model import Definition
from orchestrator.engine import dag

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ET.register_namespace("bpmn", BPMN)
ET.register_namespace("xsi", XSI)


class UnsupportedShape(ValueError):
    """A definition whose DAG this generator cannot turn into BPMN."""


def process_id(definition: Definition) -> str:
    return definition.key.replace("-", "_")


def signatures(step: Any) -> list[tuple[str, str]]:
    """(userTask id, label) for each human completion the step needs; none for notify and auto."""
    if step.kind in ("notify", "auto"):
        return []
    if getattr(step, "review_chain", None):
        return [(f"{step.id}__level{n}", level) for n, level in enumerate(step.review_chain, 1)]
    signers = step.participants if step.kind == "survey" else []
    if getattr(step, "sign", None) == "all":
        signers = step.signers
    return [(f"{step.id}__{who}", who) for who in signers] or [(step.id, "")]


def expected_user_tasks(definition: Definition, form: dict[str, Any]) -> list[str]:
    """The userTasks a case with ``form`` completes, by our engine's own DAG rules (when, dead paths)."""
    form = dict(form)
    states = {step.id: "completed" for step in definition.steps if not step.after}
    while moves := dag.advance(definition, states, form):
        for move in moves:
            states[move.step_id] = "completed" if move.state == "ready" else "skipped"
            step = definition.steps_by_id[move.step_id]
            if move.state == "ready" and step.kind == "auto" and step.result_field:
                form[step.result_field] = bool(step.rule.evaluate(form))
    return [task for step in definition.steps if states.get(step.id) == "completed" for task, _ in signatures(step)]


def bpmn_for(definition: Definition) -> str:
    """The definition as one executable BPMN process (id ``process_id(definition)``), as XML text."""
    roots = [step.id for step in definition.steps if not step.after]
    if len(roots) != 1:
        raise UnsupportedShape(f"{definition.key}: one step without `after` expected, found {roots}")
    steps = definition.steps_by_id
    root = ET.Element(f"{{{BPMN}}}definitions", id=f"Definitions_{process_id(definition)}")
    root.set("targetNamespace", f"https://tongban.example/bpmn/{definition.key}")
    process = ET.SubElement(root, f"{{{BPMN}}}process", id=process_id(definition), name=definition.name)
    process.set("isExecutable", "true")

    def node(tag: str, node_id: str, name: str | None = None) -> ET.Element:
        element = ET.SubElement(process, f"{{{BPMN}}}{tag}", id=node_id)
        if name:
            element.set("name", name)
        return element

    def flow(source: str, target: str, condition: str | None = None) -> str:
        flow_id = f"{source}__to__{target}"
        element = ET.SubElement(process, f"{{{BPMN}}}sequenceFlow", id=flow_id, sourceRef=source, targetRef=target)
        if condition is not None:
            expression = ET.SubElement(element, f"{{{BPMN}}}conditionExpression")
            expression.set(f"{{{XSI}}}type", "bpmn:tFormalExpression")
            expression.text = condition
        return flow_id

    def fragment(step: Any) -> tuple[str, str]:
        """Emit the step's own nodes; return its first and last node."""
        tasks = signatures(step)
        if not tasks:
            script = "pass"
            if step.kind == "auto" and step.result_field:
                script = f"{step.result_field} = bool({step.rule.source})"
            ET.SubElement(node("scriptTask", step.id, step.name), f"{{{BPMN}}}script").text = script
            return step.id, step.id
        for task, label in tasks:
            node("userTask", task, f"{step.name}·{label}" if label else step.name)
        if getattr(step, "review_chain", None) or len(tasks) == 1:
            for a, b in pairwise(task for task, _ in tasks):
                flow(a, b)
            return tasks[0][0], tasks[-1][0]
        fork, merge = f"{step.id}__fork", f"{step.id}__merge"
        node("parallelGateway", fork)
        node("parallelGateway", merge)
        for task, _ in tasks:
            flow(fork, task)
            flow(task, merge)
        return fork, merge

    @cache
    def skippable(step_id: str) -> bool:
        step = steps[step_id]
        return step.when is not None or (bool(step.after) and all(skippable(b) for b in step.after))

    node("startEvent", "StartEvent")  # capitalised: step ids are lower case
    first, last, inlet = {}, {}, {}
    for step in definition.steps:
        first[step.id], last[step.id] = fragment(step)
        inlet[step.id] = first[step.id]
        if len(step.after) > 1:
            inclusive = step.when is not None or any(skippable(b) for b in step.after)
            inlet[step.id] = node("inclusiveGateway" if inclusive else "parallelGateway", f"{step.id}__join").get("id")
            flow(inlet[step.id], first[step.id])
    flow("StartEvent", inlet[roots[0]])

    for step in definition.steps:
        after = [steps[s] for s in definition.successors[step.id]]
        conditional = any(s.when is not None for s in after)
        if not after:
            flow(last[step.id], node("endEvent", f"{step.id}__end").get("id"))
        elif len(after) == 1 and not conditional:
            flow(last[step.id], inlet[after[0].id])
        else:
            split = node("inclusiveGateway" if conditional else "parallelGateway", f"{step.id}__split")
            flow(last[step.id], split.get("id"))
            for s in after:
                when = (s.when.source if s.when is not None else "True") if conditional else None
                flow(split.get("id"), inlet[s.id], when)
            if all(s.when is not None for s in after):
                split.set("default", flow(split.get("id"), node("endEvent", f"{step.id}__none").get("id")))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
