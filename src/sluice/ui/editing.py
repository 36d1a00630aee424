"""The flow editor's server side: checking a typed definition (every problem with
its line), saving it as a new version, the example flows, and the diff of two
versions."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice.definitions.model import FlowDefinition
from sluice.definitions.parse import load_documents
from sluice.definitions.problems import DefinitionError, Problem
from sluice.definitions.source import document_texts
from sluice.service import Sluice
from sluice.store import flows as flow_store
from sluice.store.flows import UnknownFlow
from sluice.ui.lines import lines_of

EXAMPLES = Path(__file__).parent / "examples"
NEW_FLOW = """\
key: my-flow
name: My flow
trigger:
  event: $signup
steps:
  - id: welcome
    email:
      subject: 'Welcome, {{ visitor.first_name | default: "friend" }}!'
      html: '<p>Thanks for signing up.</p>'
"""


@dataclass(frozen=True)
class Checked:
    """A typed definition: the flow when valid, else every problem with its line."""

    flow: FlowDefinition | None
    document: dict | None
    problems: list[dict[str, Any]]


def check(sluice: Sluice, text: str, key: str | None, *, document: dict | None = None) -> Checked:
    """Validate `text` as one flow: the flow `key` being edited, which the definition
    must keep, or with `key` None a new flow, whose key must be free. `document`, when
    the caller knows what `text` loads to (the builder's merged text, which loads to
    the document merged in: definitions.source), spares reading the text again; the
    text is read only to find the lines of problems."""
    if document is not None:
        documents = [document]
    else:
        try:
            documents = load_documents(text, "document")
        except DefinitionError as error:
            return Checked(None, None, located(text, error.problems, loaded=False))
    problems = []
    if len(documents) != 1:
        problems.append(Problem("", f"expected one flow definition, found {len(documents)}"))
    document = documents[0] if documents else {}
    if document.get("kind") in ("template", "segment"):
        kind = document["kind"]
        problems.append(Problem("kind", f"this editor saves flows; {kind}s have their own pages"))
    if key is not None and document.get("key") != key:
        problems.append(Problem("key", f"must stay '{key}' (to start another flow, use New flow)"))
    if key is None and _exists(sluice, document.get("key")):
        problems.append(Problem("key", f"a flow '{document['key']}' exists already; edit it there"))
    flow = None
    try:
        flow = sluice.validate([("document", document)]).flows[0]
    except DefinitionError as error:
        problems += error.problems
    if problems:
        return Checked(None, document, located(text, problems, loaded=True))
    return Checked(flow, document, [])


def _exists(sluice: Sluice, key: object) -> bool:
    with sluice.db.read() as conn:
        try:
            flow_store.get_flow(conn, str(key))
        except UnknownFlow:
            return False
    return True


def located(text: str, problems: list[Problem], *, loaded: bool) -> list[dict[str, Any]]:
    """Problems as the editors show them, `{loc, msg, line}` (lines.py)."""
    lines = lines_of(text, [(p.loc, p.msg) for p in problems], loaded=loaded)
    return [
        {"loc": p.loc, "msg": p.msg, "line": line} for p, line in zip(problems, lines, strict=True)
    ]


def save(
    sluice: Sluice,
    checked: Checked,
    text: str,
    actor: str,
    note: str | None = None,
    *,
    based_on: int | None = None,
) -> int | None:
    """Save a checked definition with its `text` as typed (kept with the version,
    comments and all: SPEC §7) and the note written with it; the new version, or None
    when neither the definition nor its text changed. With `based_on` (the version
    the text was made from), raises VersionConflict if another is current."""
    report = sluice.apply(
        [("document", checked.document)],
        texts=document_texts(text),
        note=note,
        actor=actor,
        based_on=None if based_on is None else {checked.flow.key: based_on},
    )
    return report.flows[checked.flow.key]


def examples() -> list[dict[str, Any]]:
    """The example flows shipped with Sluice, for a first flow in one click."""
    found = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        document = load_documents(path.read_text(), path.name)[0]
        if document.get("kind") != "template":
            found.append({"file": path.name, **document})
    return found


def apply_example(sluice: Sluice, file: str, actor: str) -> str:
    """Save the example flow of `file` with the templates the examples share; its key."""
    names = {path.name: path for path in EXAMPLES.glob("*.yaml")}
    documents = [(file, d) for d in load_documents(names[file].read_text(), file)]
    for name, path in names.items():
        documents += [
            (name, d) for d in load_documents(path.read_text(), name) if d.get("kind") == "template"
        ]
    sluice.apply(documents, actor=actor)
    return documents[0][1]["key"]


def diff_rows(old: str, new: str) -> list[dict[str, Any]]:
    """A unified diff of two versions' texts (comments included: SPEC §7) as rows
    `{kind, old, new, text}` for a table: kind is `hunk`, `context`, `added` or
    `removed`; old/new are line numbers."""
    before, after = old.splitlines(), new.splitlines()
    rows = []
    for group in difflib.SequenceMatcher(None, before, after).get_grouped_opcodes(3):
        (_, old_start, _, new_start, _), (_, _, old_end, _, new_end) = group[0], group[-1]
        header = (
            f"@@ -{old_start + 1},{old_end - old_start} +{new_start + 1},{new_end - new_start} @@"
        )
        rows.append({"kind": "hunk", "old": None, "new": None, "text": header})
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                rows += [
                    {"kind": "context", "old": i + 1, "new": j + 1, "text": before[i]}
                    for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
                ]
                continue
            rows += [
                {"kind": "removed", "old": i + 1, "new": None, "text": before[i]}
                for i in range(i1, i2)
            ]
            rows += [
                {"kind": "added", "old": None, "new": j + 1, "text": after[j]}
                for j in range(j1, j2)
            ]
    return rows


_HUNK = re.compile(r"@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def unified_rows(diff: str) -> list[dict[str, Any]]:
    """The rows of `diff_rows` read back from a stored unified diff (the `diff` of an
    audit log's change: store.flows.diff), for the same table."""
    rows: list[dict[str, Any]] = []
    old = new = 0
    # split("\n"), not splitlines(): a line of YAML may hold U+2028 and the like.
    for line in diff.split("\n"):
        hunk = _HUNK.match(line)
        if hunk:
            old, new = int(hunk[1]), int(hunk[2])
            rows.append({"kind": "hunk", "old": None, "new": None, "text": line})
        elif not rows or not line:  # the ---/+++ header, the end
            continue
        elif line[0] == "-":
            rows.append({"kind": "removed", "old": old, "new": None, "text": line[1:]})
            old += 1
        elif line[0] == "+":
            rows.append({"kind": "added", "old": None, "new": new, "text": line[1:]})
            new += 1
        else:
            rows.append({"kind": "context", "old": old, "new": new, "text": line[1:]})
            old, new = old + 1, new + 1
    return rows
