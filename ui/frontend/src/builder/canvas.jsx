// The builder's canvas: the trigger box and the step tree, branches side by side, drawn
// with the server canvas's classes (src/sluice/ui/templates/_canvas.html) so both look
// alike. Each box is a button (click or Enter selects it); a "+" slot between boxes and
// at the end of every branch opens the palette of step kinds; a step moves by drag and
// drop onto a slot, or by keyboard: Alt+↑/↓ within its lane, or "Move" then a slot
// (↑/↓ go from slot to slot, Enter drops, Escape cancels).
import { useLayoutEffect, useRef, useState } from "preact/hooks";
import {
  KINDS,
  branchesOf,
  canMove,
  describeTrigger,
  getIn,
  kindOf,
  pathKey,
  samePath,
  stepId,
  summary,
} from "./document.js";

/**
 * Props: `document`; `problems` grouped by step ({pathKey: [{loc, msg}]}, "" for the
 * flow and trigger: document.problemsByStep); `selected` (a step path, "trigger" or
 * null); `context` ({rendered: {id: {subject}}, path: [ids]} from the try-out);
 * callbacks `onSelect(path | "trigger")`, `onInsert(lane, index, kind)`,
 * `onRemove(path)`, `onMove(from, lane, index)` (index as the lane is before the
 * move; returns the moved step's id or nothing), `onAddBranch(path, name)`,
 * `onRemoveBranch(path, name)`.
 */
export function Canvas(props) {
  const { document: doc, problems = {}, selected } = props;
  const [palette, setPalette] = useState(null); // pathKey(lane) + ":" + index
  const [moving, setMoving] = useState(null); // the path of the step being moved
  const [dragging, setDragging] = useState(null);
  const focusNext = useRef(null); // what to focus after the next render: a selector, or root => element
  const root = useRef(null);

  useLayoutEffect(() => {
    if (!focusNext.current || !root.current) return;
    const wanted = focusNext.current;
    focusNext.current = null;
    const target = typeof wanted === "function" ? wanted(root.current) : root.current.querySelector(wanted);
    if (target) target.focus();
  });

  const focusStep = (id) => {
    focusNext.current = `[data-step="${cssEscape(id)}"]`;
  };
  const source = moving || dragging;
  const move = (lane, index) => {
    const from = source;
    setMoving(null);
    setDragging(null);
    const id = props.onMove(from, lane, index);
    if (id) focusStep(id);
  };

  const ctx = {
    ...props,
    problems,
    palette,
    setPalette,
    moving,
    source,
    setDragging,
    move,
    focusNext,
    startMoving: (path, id) => {
      setPalette(null);
      setMoving(path);
      // The first place the step can go after where it is now, else the first one.
      focusNext.current = (scope) => {
        const box = scope.querySelector(`[data-step="${cssEscape(id)}"]`);
        const slots = [...scope.querySelectorAll(".slot-move")];
        const after = slots.find((slot) => box && box.compareDocumentPosition(slot) & Node.DOCUMENT_POSITION_FOLLOWING);
        return after || slots[0];
      };
    },
    cancelMoving: () => {
      setMoving(null);
      focusStep(stepId(getIn(doc, moving), moving));
    },
    focusStep,
  };

  const triggerProblems = problems[""] || [];
  const trigger = doc?.trigger || {};
  const events = describeTrigger(trigger, doc?.key);
  return (
    <div
      ref={root}
      class="canvas builder-canvas"
      onKeyDown={(event) => {
        if (event.key === "Escape" && moving) {
          event.preventDefault();
          ctx.cancelMoving();
        }
      }}
    >
      {moving && (
        <p class="move-hint" role="status">
          Moving <code>{stepId(getIn(doc, moving), moving)}</code>: pick a place (↑/↓, Enter), or{" "}
          <button type="button" class="link-button" onClick={ctx.cancelMoving}>
            cancel
          </button>
        </p>
      )}
      <div class="box-wrap">
        <button
          type="button"
          class={`trigger box${selected === "trigger" ? " selected" : ""}${triggerProblems.length ? " failing" : ""}`}
          data-trigger
          aria-current={selected === "trigger" ? "true" : undefined}
          onClick={() => props.onSelect("trigger")}
        >
          <span class="box-head">
            <span class="box-kind">trigger</span>
          </span>
          <span class="box-summary">{events || "no trigger"}</span>
          {trigger.if && (
            <span class="box-id muted">
              if <code>{String(trigger.if)}</code>
            </span>
          )}
          <span class="box-id muted">
            {doc?.key} · {String(doc?.entry || "one_at_a_time").replace(/_/g, " ")}
            {Array.isArray(doc?.exit) && doc.exit.length ? ` · goal: ${doc.exit.map((g) => g?.event).join(", ")}` : ""}
          </span>
          <Problems list={triggerProblems} />
        </button>
      </div>
      <Lane lane={["steps"]} ctx={ctx} />
      <div class="end-node">
        <span>end</span>
      </div>
    </div>
  );
}

function Lane({ lane, ctx }) {
  const list = getIn(ctx.document, lane);
  const steps = Array.isArray(list) ? list : [];
  const seen = new Set();
  const items = [];
  steps.forEach((step, i) => {
    const path = [...lane, i];
    const id = stepId(step, path);
    const key = seen.has(id) ? `${id}#${i}` : id;
    seen.add(id);
    items.push(<Slot key={`slot-${i}`} lane={lane} index={i} ctx={ctx} />);
    items.push(<StepNode key={key} step={step} path={path} id={id} ctx={ctx} />);
  });
  items.push(<Slot key="slot-end" lane={lane} index={steps.length} ctx={ctx} end />);
  return <ol class="lane">{items}</ol>;
}

/** A place in a lane: "+" (palette), or a drop target while a step moves. */
function Slot({ lane, index, ctx, end }) {
  const id = `${pathKey(lane)}:${index}`;
  const open = ctx.palette === id;
  const [over, setOver] = useState(false);
  const source = ctx.source;
  // A step moves to a slot in its own lane right before or after it: no change.
  const noop =
    source &&
    samePath(source.slice(0, -1), lane) &&
    (index === source[source.length - 1] || index === source[source.length - 1] + 1);
  const target = source && canMove(source, lane) && !noop;
  const where = placeName(ctx.document, lane, index);

  if (ctx.moving) {
    return (
      <li class={`slot${end ? " slot-end" : ""}`}>
        {target && (
          <button
            type="button"
            class="slot-move"
            onClick={() => ctx.move(lane, index)}
            onKeyDown={(event) => arrowBetween(event, ".slot-move")}
          >
            Move here <span class="visually-hidden">({where})</span>
          </button>
        )}
      </li>
    );
  }
  return (
    <li
      class={`slot${end ? " slot-end" : ""}${over ? " drop" : ""}${open ? " open" : ""}`}
      onDragOver={(event) => {
        if (!target) return;
        event.preventDefault();
        event.dataTransfer.dropEffect = "move";
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(event) => {
        event.preventDefault();
        setOver(false);
        if (target) ctx.move(lane, index);
      }}
    >
      <button
        type="button"
        class="slot-add"
        aria-expanded={open ? "true" : "false"}
        aria-label={`Add a step ${where}`}
        title={`Add a step ${where}`}
        data-slot={id}
        onClick={() => ctx.setPalette(open ? null : id)}
      >
        +
      </button>
      {open && (
        <Palette
          label={`Add a step ${where}`}
          onPick={(kind) => {
            ctx.setPalette(null);
            const newId = ctx.onInsert(lane, index, kind);
            if (newId) ctx.focusStep(newId);
          }}
          onClose={() => {
            ctx.setPalette(null);
            ctx.focusNext.current = `[data-slot="${cssEscape(id)}"]`;
          }}
        />
      )}
    </li>
  );
}

/** Where a slot is, said for a screen reader: "after welcome", "at the start of
 * else of activated", "at the start of branch 2 of ab". */
function placeName(doc, lane, index) {
  const list = getIn(doc, lane) || [];
  if (index > 0 && list[index - 1]) return `after ${stepId(list[index - 1], [...lane, index - 1])}`;
  if (lane.length === 1) return "at the start";
  const last = lane[lane.length - 1];
  let owner = lane.slice(0, -1); // [..., "then"]
  let branch = String(last).replace("_", " ");
  if (last === "steps") {
    owner = lane.slice(0, -3); // [..., "split", i, "steps"]
    branch = `branch ${lane[lane.length - 2] + 1}`;
  } else if (last === "on_failure") {
    owner = lane.slice(0, -2); // [..., "webhook", "on_failure"]
  }
  return `at the start of ${branch} of ${stepId(getIn(doc, owner), owner)}`;
}

function Palette({ label, onPick, onClose }) {
  const ref = useRef(null);
  // Before the browser handles the next key: an ↓ typed at once goes to the palette.
  useLayoutEffect(() => {
    const palette = ref.current;
    const slot = palette?.parentElement;
    // Room for it below its "+": the canvas grows to hold it whole (it was cut off at
    // the canvas's end, and covered the steps below).
    if (slot) slot.style.marginBottom = `${palette.offsetHeight + 8}px`;
    palette?.querySelector("button")?.focus();
    palette?.scrollIntoView?.({ block: "nearest", inline: "nearest" });
    return () => {
      if (slot) slot.style.marginBottom = "";
    };
  }, []);
  return (
    <div
      class="palette"
      role="group"
      aria-label={label}
      ref={ref}
      onKeyDown={(event) => {
        if (event.key === "Escape") {
          event.preventDefault();
          event.stopPropagation();
          onClose();
        } else {
          arrowBetween(event, ".palette-kind", ref.current);
        }
      }}
    >
      {KINDS.map(({ kind, label: name, help }) => (
        <button type="button" class={`palette-kind kind-${kind}`} data-kind={kind} onClick={() => onPick(kind)}>
          <span class="palette-name">{name}</span>
          <span class="palette-help">{help}</span>
        </button>
      ))}
    </div>
  );
}

/** ↑/↓ (and ←/→) move the focus between the elements matching `selector`. */
function arrowBetween(event, selector, scope) {
  const step = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 }[event.key];
  if (!step) return;
  const all = [...(scope || event.currentTarget.ownerDocument).querySelectorAll(selector)];
  const next = all[all.indexOf(event.currentTarget.closest(selector) || event.target) + step];
  if (next) {
    event.preventDefault();
    next.focus();
  }
}

function StepNode({ step, path, id, ctx }) {
  const kind = kindOf(step) || "unknown";
  const problems = ctx.problems[pathKey(path)] || [];
  const selected = Array.isArray(ctx.selected) && samePath(ctx.selected, path);
  const rendered = kind === "email" ? ctx.context?.rendered?.[id] : null;
  const onPath = (ctx.context?.path || []).includes(id);
  const branches = branchesOf(step, path);
  const lane = path.slice(0, -1);
  const index = path[path.length - 1];
  const problemId = `problems-${pathKey(path)}`;
  const classes = ["box", `kind-${kind}`];
  if (selected) classes.push("selected");
  if (problems.length) classes.push("failing");
  if (onPath) classes.push("on-path");
  if (ctx.moving && samePath(ctx.moving, path)) classes.push("moving");

  const keyDown = (event) => {
    if (!event.altKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
    event.preventDefault();
    const length = (getIn(ctx.document, lane) || []).length;
    const to = event.key === "ArrowUp" ? index - 1 : index + 2;
    if (to < 0 || to > length) return;
    const moved = ctx.onMove(path, lane, to);
    if (moved) ctx.focusStep(moved);
  };
  const endsInExit = (steps) => steps.length && kindOf(steps[steps.length - 1]) === "exit";

  return (
    <li class="node">
      <div class="box-wrap">
        <button
          type="button"
          class={classes.join(" ")}
          data-step={id}
          data-kind={kind}
          draggable
          aria-current={selected ? "true" : undefined}
          aria-describedby={problems.length ? problemId : undefined}
          aria-keyshortcuts="Alt+ArrowUp Alt+ArrowDown"
          onClick={() => ctx.onSelect(path)}
          onKeyDown={keyDown}
          onDragStart={(event) => {
            event.dataTransfer.effectAllowed = "move";
            event.dataTransfer.setData("text/plain", id);
            ctx.setDragging(path);
          }}
          onDragEnd={() => ctx.setDragging(null)}
        >
          <span class="box-head">
            <span class="box-kind">{kind.replace(/_/g, " ")}</span>
          </span>
          <span class="box-id">
            <code>{id}</code>
          </span>
          <span class="box-summary" title={summary(step)}>
            {rendered?.subject ?? summary(step)}
          </span>
          {rendered?.subject != null && <span class="box-rendered muted">as the visitor sees it</span>}
        </button>
        {problems.length > 0 && <Problems list={problems} id={problemId} />}
        <span class="box-tools">
          <button
            type="button"
            class="tool"
            aria-label={`Move ${id}`}
            title="Move (or Alt+↑/↓)"
            onClick={() => ctx.startMoving(path, id)}
          >
            ↕
          </button>
          {kind === "split" && (
            <button
              type="button"
              class="tool"
              aria-label={`Add a branch to ${id}`}
              title="Add a branch"
              onClick={() => ctx.onAddBranch(path, "split")}
            >
              <ForkIcon />
            </button>
          )}
          {kind === "webhook" && !branches.length && (
            <button
              type="button"
              class="tool"
              aria-label={`Add a failure branch to ${id}`}
              title="Add an on-failure branch"
              onClick={() => ctx.onAddBranch(path, "on_failure")}
            >
              <ForkIcon />
            </button>
          )}
          <button
            type="button"
            class="tool tool-danger"
            aria-label={`Delete ${id}`}
            title="Delete"
            onClick={() => {
              // Keep the keyboard near: on the next box (which takes this one's
              // place), else the previous one, else the lane's "+".
              const steps = getIn(ctx.document, lane) || [];
              ctx.onRemove(path);
              if (steps[index + 1]) ctx.focusStep(stepId(steps[index + 1], path));
              else if (steps[index - 1]) ctx.focusStep(stepId(steps[index - 1], [...lane, index - 1]));
              else ctx.focusNext.current = `[data-slot="${cssEscape(`${pathKey(lane)}:0`)}"]`;
            }}
          >
            ×
          </button>
        </span>
      </div>
      {branches.length > 0 && (
        <div class="branches">
          {branches.map((branch) => {
            const steps = getIn(ctx.document, branch.lane) || [];
            const removable = branch.present && (typeof branch.name !== "number" || branches.length > 1);
            return (
              <div class={`branch${endsInExit(steps) ? " ends" : ""}`} key={String(branch.name)}>
                <div class="branch-label">
                  {branch.label}
                  {removable && (
                    <button
                      type="button"
                      class="branch-remove"
                      aria-label={`Remove the branch ${branch.label} of ${id}`}
                      title="Remove this branch and its steps"
                      onClick={() => ctx.onRemoveBranch(path, branch.name)}
                    >
                      ×
                    </button>
                  )}
                </div>
                <Lane lane={branch.lane} ctx={ctx} />
                {steps.length === 0 && <div class="pass">continue</div>}
                <div class="branch-tail" />
              </div>
            );
          })}
        </div>
      )}
    </li>
  );
}

function Problems({ list, id }) {
  if (!list.length) return null;
  return (
    <span class="box-problems" id={id}>
      {list[0].msg}
      {list.length > 1 ? ` (+${list.length - 1} more)` : ""}
    </span>
  );
}

function cssEscape(text) {
  return String(text).replace(/["\\]/g, "\\$&");
}

/** A fork (drawn, not a character: no common font has U+2442 "⑂"). */
function ForkIcon() {
  return (
    <svg width="14" height="14" viewBox="0 0 16 16" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round">
      <path d="M8 15V8M8 8 3 2M8 8l5-6" />
    </svg>
  );
}
