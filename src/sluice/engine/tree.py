"""The step tree of one flow version, indexed for walking and for migrating sessions.

A session's position is a step id. Where it goes after a step follows from the tree:
the next sibling, else whatever follows the step that owns the branch, and after the
last top-level step, nowhere (the session completes).
"""

from __future__ import annotations

from dataclasses import dataclass

from sluice.definitions.model import FlowDefinition, Step, child_lists


@dataclass(frozen=True)
class _Node:
    step: Step
    order: int
    next_id: str | None


class FlowTree:
    def __init__(self, definition: FlowDefinition):
        self.definition = definition
        self._nodes: dict[str, _Node] = {}
        self._index(definition.steps, after=None)
        self.first: str | None = definition.steps[0].id if definition.steps else None

    def _index(self, steps: tuple[Step, ...], after: str | None) -> None:
        for position, step in enumerate(steps):
            following = steps[position + 1].id if position + 1 < len(steps) else after
            self._nodes[step.id] = _Node(step, len(self._nodes), following)
            for _, children in child_lists(step):
                self._index(children, after=following)

    def __contains__(self, step_id: str) -> bool:
        return step_id in self._nodes

    def step(self, step_id: str) -> Step:
        return self._nodes[step_id].step

    def next_after(self, step_id: str) -> str | None:
        """Where a session goes once this step (and any branch it took) is done."""
        return self._nodes[step_id].next_id

    def enter(self, branch: tuple[Step, ...] | None, owner: str) -> str | None:
        """The first step of a branch; an empty or absent branch continues after its owner."""
        return branch[0].id if branch else self.next_after(owner)

    def ids_in_order(self) -> list[str]:
        return list(self._nodes)

    def continue_at(self, old: FlowTree, step_id: str | None) -> str | None:
        """Where a session at `step_id` in `old` continues in this tree (SPEC §2.7):
        the same id if it still exists, else the first step after it in the old
        version's order that exists here, else nowhere (the session completes)."""
        if step_id is None:
            return None
        if step_id in self._nodes:
            return step_id
        if step_id not in old:
            return None
        later = old.ids_in_order()[old._nodes[step_id].order + 1 :]
        return next((s for s in later if s in self._nodes), None)
