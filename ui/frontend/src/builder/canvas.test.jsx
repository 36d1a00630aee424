import { cleanup, fireEvent, render, screen } from "@testing-library/preact";
import { useState } from "preact/hooks";
import { afterEach, describe, expect, it } from "vitest";
import { Canvas } from "./canvas.jsx";
import {
  addBranch,
  allSteps,
  insertStep,
  moveStep,
  newStep,
  problemsByStep,
  removeBranch,
  removeStep,
  stepAt,
  stepId,
} from "./document.js";

const flow = () => ({
  key: "onboarding",
  trigger: { event: "$signup" },
  steps: [
    { id: "welcome", email: { subject: "Welcome!", html: "<p>Hi</p>" } },
    { id: "settle", wait: "2d" },
    {
      id: "activated",
      if: 'visitor.tags contains "activated"',
      then: [{ id: "mark_engaged", tag: { add: ["engaged"] } }],
    },
    { id: "done", field: { set: { onboarded_at: "{{ now }}" } } },
  ],
});

/** The canvas with the document edits the app makes, and the document to look at. */
function Harness({ initial, problems = [], seen }) {
  const [doc, setDoc] = useState(initial);
  const [selected, setSelected] = useState(null);
  seen.doc = doc;
  seen.selected = selected;
  return (
    <Canvas
      document={doc}
      problems={problemsByStep(problems)}
      selected={selected}
      onSelect={setSelected}
      onInsert={(lane, index, kind) => {
        const step = newStep(kind, doc);
        setDoc(insertStep(doc, lane, index, step));
        return step.id;
      }}
      onRemove={(path) => setDoc(removeStep(doc, path))}
      onMove={(from, lane, index) => {
        const moved = moveStep(doc, from, lane, index);
        setDoc(moved.doc);
        return stepId(stepAt(moved.doc, moved.path), moved.path);
      }}
      onAddBranch={(path, name) => setDoc(addBranch(doc, path, name))}
      onRemoveBranch={(path, name) => setDoc(removeBranch(doc, path, name))}
    />
  );
}

const ids = (doc) => allSteps(doc).map(({ step, path }) => stepId(step, path));
const box = (id) => document.querySelector(id === "trigger" ? "[data-trigger]" : `[data-step="${id}"]`);

function mount(initial = flow(), problems = []) {
  const seen = {};
  render(<Harness initial={initial} problems={problems} seen={seen} />);
  return seen;
}

afterEach(cleanup);

describe("the canvas", () => {
  it("draws the trigger and every step with its kind, id and summary", () => {
    mount();
    expect(box("trigger").textContent).toContain("$signup");
    expect(box("welcome").textContent).toContain("email");
    expect(box("welcome").textContent).toContain("Welcome!");
    expect(box("settle").textContent).toContain("wait 2d");
    expect(box("mark_engaged").closest(".branch").querySelector(".branch-label").textContent).toContain("then");
    // the absent else branch is shown: the session carries on there
    expect([...document.querySelectorAll(".branch-label")].map((l) => l.textContent)).toEqual(["then×", "else"]);
    expect(box("welcome").tagName).toBe("BUTTON");
  });

  it("selects a step by clicking its box", () => {
    const seen = mount();
    fireEvent.click(box("settle"));
    expect(seen.selected).toEqual(["steps", 1]);
    expect(box("settle").getAttribute("aria-current")).toBe("true");
    fireEvent.click(box("trigger"));
    expect(seen.selected).toBe("trigger");
  });

  it("opens a palette of every step kind from a '+' and adds the picked one there", () => {
    const seen = mount();
    const plus = screen.getByRole("button", { name: "Add a step after welcome" });
    fireEvent.click(plus);
    expect(plus.getAttribute("aria-expanded")).toBe("true");
    const palette = screen.getByRole("group", { name: "Add a step after welcome" });
    const kinds = [...palette.querySelectorAll("button")].map((b) => b.dataset.kind);
    expect(kinds).toHaveLength(13);
    expect(document.activeElement).toBe(palette.querySelector("button"));
    fireEvent.click(palette.querySelector('[data-kind="tag"]'));
    expect(ids(seen.doc).slice(0, 3)).toEqual(["welcome", "tag_engaged", "settle"]);
    expect(document.activeElement).toBe(box("tag_engaged"));
    expect(screen.queryByRole("group", { name: /Add a step/ })).toBeNull();
  });

  it("adds a step into an empty branch and closes the palette with Escape", () => {
    const seen = mount();
    const plus = screen.getByRole("button", { name: "Add a step at the start of else of activated" });
    fireEvent.click(plus);
    fireEvent.keyDown(document.activeElement, { key: "Escape" });
    expect(screen.queryByRole("group")).toBeNull();
    expect(document.activeElement).toBe(plus);
    fireEvent.click(plus);
    fireEvent.click(document.querySelector('.palette [data-kind="exit"]'));
    expect(seen.doc.steps[2].else).toEqual([{ id: "exit", exit: true }]);
  });

  it("moves a step with Alt+arrows within its lane, keeping the focus on it", () => {
    const seen = mount();
    box("welcome").focus();
    fireEvent.keyDown(box("welcome"), { key: "ArrowDown", altKey: true });
    expect(seen.doc.steps.map((s) => s.id)).toEqual(["settle", "welcome", "activated", "done"]);
    expect(document.activeElement).toBe(box("welcome"));
    fireEvent.keyDown(box("welcome"), { key: "ArrowUp", altKey: true });
    fireEvent.keyDown(box("welcome"), { key: "ArrowUp", altKey: true }); // already first
    expect(seen.doc.steps.map((s) => s.id)).toEqual(["welcome", "settle", "activated", "done"]);
  });

  it("moves a step anywhere by keyboard: Move, arrows between places, Enter", () => {
    const seen = mount();
    fireEvent.click(screen.getByRole("button", { name: "Move done" }));
    expect(screen.getByRole("status").textContent).toContain("Moving done");
    // the slots around `done` itself are no places to go; none inside its own branches
    const places = [...document.querySelectorAll(".slot-move")].map((b) => b.textContent);
    expect(places).toContain("Move here (at the start of else of activated)");
    expect(places).not.toContain("Move here (after activated)");
    expect(document.activeElement.textContent).toBe("Move here (at the start)");
    fireEvent.keyDown(document.activeElement, { key: "ArrowDown" });
    expect(document.activeElement.textContent).toBe("Move here (after welcome)");
    fireEvent.click(document.activeElement); // Enter on a button
    expect(ids(seen.doc)).toEqual(["welcome", "done", "settle", "activated", "mark_engaged"]);
    expect(document.activeElement).toBe(box("done"));
    expect(screen.queryByRole("status")).toBeNull();
  });

  it("cancels a move with Escape", () => {
    const seen = mount();
    fireEvent.click(screen.getByRole("button", { name: "Move settle" }));
    fireEvent.keyDown(document.activeElement, { key: "Escape" });
    expect(document.querySelector(".slot-move")).toBeNull();
    expect(document.activeElement).toBe(box("settle"));
    expect(ids(seen.doc)).toEqual(ids(flow()));
  });

  it("moves a step by drag and drop onto a slot", () => {
    const seen = mount();
    const data = { setData() {}, effectAllowed: "", dropEffect: "" };
    fireEvent.dragStart(box("welcome"), { dataTransfer: data });
    const slot = screen.getByRole("button", { name: "Add a step at the start of else of activated" }).closest("li");
    fireEvent.dragOver(slot, { dataTransfer: data });
    fireEvent.drop(slot, { dataTransfer: data });
    expect(seen.doc.steps[1].else.map((s) => s.id)).toEqual(["welcome"]);
  });

  it("deletes a step and moves the focus to the next one", () => {
    const seen = mount();
    fireEvent.click(screen.getByRole("button", { name: "Delete settle" }));
    expect(ids(seen.doc)).toEqual(["welcome", "activated", "mark_engaged", "done"]);
    expect(document.activeElement).toBe(box("activated"));
  });

  it("adds and removes branches", () => {
    const seen = mount({
      key: "f",
      trigger: { event: "e" },
      steps: [
        { id: "ab", split: [{ weight: 50, steps: [] }, { weight: 50, steps: [] }] },
        { id: "hook", webhook: { url: "https://x.test" } },
      ],
    });
    fireEvent.click(screen.getByRole("button", { name: "Add a branch to ab" }));
    expect(seen.doc.steps[0].split).toHaveLength(3);
    fireEvent.click(screen.getByRole("button", { name: "Add a failure branch to hook" }));
    expect(seen.doc.steps[1].webhook.on_failure).toEqual([]);
    expect(screen.getByText("on failure")).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Remove the branch on failure of hook" }));
    expect("on_failure" in seen.doc.steps[1].webhook).toBe(false);
    fireEvent.click(screen.getAllByRole("button", { name: /Remove the branch 50 of ab/ })[0]);
    expect(seen.doc.steps[0].split).toHaveLength(2);
  });

  it("shows a problem on its box, red, and on the trigger those outside the steps", () => {
    mount(flow(), [
      { loc: "steps[2].then[0].tag.add[0]", msg: "expected a string" },
      { loc: "trigger.event", msg: "missing required key 'event'" },
    ]);
    const tagged = box("mark_engaged");
    expect(tagged.classList.contains("failing")).toBe(true);
    const described = document.getElementById(tagged.getAttribute("aria-describedby"));
    expect(described.textContent).toBe("expected a string");
    expect(box("trigger").textContent).toContain("missing required key 'event'");
    expect(box("welcome").classList.contains("failing")).toBe(false);
  });
});
