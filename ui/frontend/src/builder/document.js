// The flow definition document (SPEC §2) as the builder edits it: pure functions that
// never change their arguments and return a new document sharing the untouched parts.
//
// A PATH is an array of keys into the document, as `getIn` walks it:
//   ["steps", 2]                                   the third top-level step
//   ["steps", 2, "then", 0]                        the first step of its `then` (`if`, `wait_for`)
//   ["steps", 3, "webhook", "on_failure", 0]       a webhook's failure branch
//   ["steps", 4, "split", 1, "steps", 0]           the second branch of a split
// A LANE is the path of a list of steps (["steps"], ["steps", 2, "else"]); a SLOT is a
// place in a lane: {lane, index}. `pathKey(path)` ("steps.2.then.0") is also the id the
// server derives for a step without one (src/sluice/definitions/steps.py).
import { durationSeconds, formatDuration } from "./checks.js";

/** The step kinds of SPEC §2.2, in the order the palette shows them. */
export const KINDS = [
  { kind: "email", label: "Email", help: "Send an email" },
  { kind: "wait", label: "Wait", help: "Wait for a time or until a date" },
  { kind: "wait_for", label: "Wait for event", help: "Wait until the visitor does something" },
  { kind: "if", label: "If / else", help: "Branch on a condition" },
  { kind: "split", label: "Split (A/B)", help: "Pick a branch at random by weight" },
  { kind: "tag", label: "Tag", help: "Add or remove tags" },
  { kind: "field", label: "Field", help: "Set or remove fields" },
  { kind: "subscribe", label: "Subscribe", help: "Subscribe the visitor" },
  { kind: "unsubscribe", label: "Unsubscribe", help: "Unsubscribe the visitor" },
  { kind: "webhook", label: "Webhook", help: "Call an HTTP endpoint" },
  { kind: "start_flow", label: "Start flow", help: "Start another flow" },
  { kind: "track", label: "Track event", help: "Record an event for the visitor" },
  { kind: "exit", label: "Exit", help: "End the session" },
];
const ACTIONS = KINDS.map((k) => k.kind);

/** The keys beside an action that hold nested steps (steps.py BRANCHES). */
export const STEP_BRANCHES = { if: ["then", "else"], wait_for: ["then", "on_timeout"] };

// -- reading and writing at a path --------------------------------------------------------

export function getIn(value, path) {
  let here = value;
  for (const key of path) {
    if (here == null || typeof here !== "object") return undefined;
    here = here[key];
  }
  return here;
}

/** `value` with `path` set to `next`; missing mappings on the way are created. */
export function setIn(value, path, next) {
  if (path.length === 0) return next;
  const [key, ...rest] = path;
  const here = value == null ? (typeof key === "number" ? [] : {}) : value;
  const copy = Array.isArray(here) ? [...here] : { ...here };
  copy[key] = setIn(here[key], rest, next);
  return copy;
}

/** `value` without the key (or list item) at `path`. */
export function deleteIn(value, path) {
  const parent = getIn(value, path.slice(0, -1));
  const key = path[path.length - 1];
  if (parent == null || !(key in Object(parent))) return value;
  let copy;
  if (Array.isArray(parent)) {
    copy = parent.filter((_, i) => i !== key);
  } else {
    copy = { ...parent };
    delete copy[key];
  }
  return setIn(value, path.slice(0, -1), copy);
}

export const pathKey = (path) => path.join(".");
export const samePath = (a, b) => a.length === b.length && a.every((key, i) => key === b[i]);
/** Whether `path` is `prefix` or lies inside it. */
export const within = (path, prefix) =>
  path.length >= prefix.length && prefix.every((key, i) => path[i] === key);

// -- steps ---------------------------------------------------------------------------------

/** The step's action key (`email`, `wait`…), or null when it has none. */
export function kindOf(step) {
  if (step == null || typeof step !== "object") return null;
  return ACTIONS.find((kind) => kind in step) ?? null;
}

export const stepAt = (doc, path) => getIn(doc, path);

/** The id the canvas and the server know the step by: its own, else its path. */
export const stepId = (step, path) =>
  step && typeof step.id === "string" && step.id ? step.id : pathKey(path);

/**
 * The branches of the step at `path`: [{name, label, lane, present}]. `name` is what
 * addBranch/removeBranch take: "then", "else", "on_timeout", "on_failure" or a split
 * branch's index. `present` is false for a branch the document does not hold yet (an
 * `if` without `else`): the canvas still shows it, as the session carries on there.
 */
export function branchesOf(step, path) {
  const kind = kindOf(step);
  if (kind === "if" || kind === "wait_for") {
    return STEP_BRANCHES[kind].map((name) => ({
      name,
      label: branchLabel(step, name),
      lane: [...path, name],
      present: Array.isArray(step[name]),
    }));
  }
  if (kind === "split" && Array.isArray(step.split)) {
    return step.split.map((branch, i) => ({
      name: i,
      label: `${branch?.weight ?? "?"}${splitUnit(step)}`,
      lane: [...path, "split", i, "steps"],
      present: true,
    }));
  }
  if (kind === "webhook" && Array.isArray(step.webhook?.on_failure)) {
    return [
      { name: "on_failure", label: "on failure", lane: [...path, "webhook", "on_failure"], present: true },
    ];
  }
  return [];
}

function branchLabel(step, name) {
  if (step.if !== undefined) return name;
  const event = step.wait_for?.event;
  return name === "then" ? `on ${event || "event"}` : "on timeout";
}

/** Split weights that add up to 100 read as percentages; others are relative weights. */
function splitUnit(step) {
  const total = step.split.reduce((sum, b) => sum + (Number(b?.weight) || 0), 0);
  return total === 100 ? "%" : "";
}

/** Every step of the document, depth first: [{path, step}]. */
export function allSteps(doc) {
  const out = [];
  const walk = (lane) => {
    const list = getIn(doc, lane);
    if (!Array.isArray(list)) return;
    list.forEach((step, i) => {
      const path = [...lane, i];
      out.push({ path, step });
      for (const branch of branchesOf(step, path)) walk(branch.lane);
    });
  };
  walk(["steps"]);
  return out;
}

/** The path of the step whose id (own or derived) is `id`, or null. */
export function findStep(doc, id) {
  const found = allSteps(doc).find(({ step, path }) => stepId(step, path) === id);
  return found ? found.path : null;
}

// -- editing -------------------------------------------------------------------------------

/** The document with `step` inserted at `index` of `lane` (created when missing). */
export function insertStep(doc, lane, index, step) {
  const list = getIn(doc, lane);
  const items = Array.isArray(list) ? list : [];
  const at = Math.max(0, Math.min(index, items.length));
  return setIn(doc, lane, [...items.slice(0, at), step, ...items.slice(at)]);
}

/** The document without the step at `path` (its branches go with it). */
export function removeStep(doc, path) {
  return deleteIn(doc, path);
}

/** The document with the step at `path` replaced by `step`. */
export function updateStep(doc, path, step) {
  return setIn(doc, path, step);
}

/** Whether the step at `from` may move to index `index` of `lane`: not into itself. */
export function canMove(from, lane) {
  return !within(lane, from);
}

/**
 * The document with the step at `from` moved to `index` of `lane`, where `index`
 * counts in the lane as it is BEFORE the move (the slot the person picked on the
 * canvas). Also returns where the step now is: {doc, path}.
 */
export function moveStep(doc, from, lane, index) {
  if (!canMove(from, lane)) throw new Error("a step cannot move into its own branches");
  const step = getIn(doc, from);
  const fromLane = from.slice(0, -1);
  const fromIndex = from[from.length - 1];
  let target = lane;
  let at = index;
  if (samePath(fromLane, lane) && fromIndex < index) at -= 1;
  // The target lane lies after the moved step inside the same list: its index shifts.
  if (within(lane, fromLane) && lane.length > fromLane.length) {
    const i = lane[fromLane.length];
    if (typeof i === "number" && i > fromIndex) {
      target = [...lane];
      target[fromLane.length] = i - 1;
    }
  }
  const removed = removeStep(doc, from);
  const moved = insertStep(removed, target, at, step);
  const length = getIn(moved, target).length;
  return { doc: moved, path: [...target, Math.max(0, Math.min(at, length - 1))] };
}

/**
 * The document with a branch added to the step at `path`: "then", "else",
 * "on_timeout" (an empty list), "on_failure" (a webhook's, empty: a failed call then
 * carries on instead of failing the session), or "split" (one more weighted branch).
 */
export function addBranch(doc, path, name) {
  const step = getIn(doc, path);
  const kind = kindOf(step);
  if (name === "split" && kind === "split") {
    return setIn(doc, [...path, "split"], [...(step.split || []), { weight: 50, steps: [] }]);
  }
  if (name === "on_failure" && kind === "webhook") {
    return setIn(doc, [...path, "webhook", "on_failure"], step.webhook.on_failure || []);
  }
  if ((STEP_BRANCHES[kind] || []).includes(name)) {
    return setIn(doc, [...path, name], step[name] || []);
  }
  throw new Error(`a ${kind} step has no branch '${name}'`);
}

/** The document without the branch `name` (see branchesOf) of the step at `path`;
 * a split keeps at least one branch (SPEC §2.2). */
export function removeBranch(doc, path, name) {
  const step = getIn(doc, path);
  if (typeof name === "number") {
    if (!Array.isArray(step?.split) || step.split.length <= 1) {
      throw new Error("a split keeps at least one branch");
    }
    return deleteIn(doc, [...path, "split", name]);
  }
  if (name === "on_failure") return deleteIn(doc, [...path, "webhook", "on_failure"]);
  return deleteIn(doc, [...path, name]);
}

// -- new steps -----------------------------------------------------------------------------

const DEFAULTS = {
  email: () => ({
    subject: 'Hello {{ visitor.first_name | default: "there" }}',
    html: "<p>Write your message here.</p>",
  }),
  wait: () => "1d",
  wait_for: () => ({ event: "$purchase", timeout: "3d" }),
  if: () => 'visitor.tags contains "vip"',
  split: () => [
    { weight: 50, steps: [] },
    { weight: 50, steps: [] },
  ],
  tag: () => ({ add: ["engaged"] }),
  field: () => ({ set: { status: "active" } }),
  subscribe: () => true,
  unsubscribe: () => true,
  webhook: () => ({ url: "https://example.com/hooks/sluice" }),
  start_flow: (doc, options) => (options.flows || []).find((key) => key !== doc?.key) || doc?.key || "",
  track: () => ({ type: "milestone" }),
  exit: () => true,
};

/**
 * A valid new step of `kind` for the document `doc`, with an id saying what it does
 * (`email_hello`, `wait_1d`, `tag_engaged`), unique in `doc`. `options.flows` (flow
 * keys) gives `start_flow` a flow to start.
 */
export function newStep(kind, doc, options = {}) {
  if (!DEFAULTS[kind]) throw new Error(`unknown step kind '${kind}'`);
  const step = { [kind]: DEFAULTS[kind](doc, options) };
  if (kind === "if") Object.assign(step, { then: [], else: [] });
  return { id: uniqueId(suggestId(step), doc), ...step };
}

/** An id for the step from what it does, e.g. `email_welcome`, `wait_2d`, `if_vip`. */
export function suggestId(step) {
  const kind = kindOf(step);
  const value = step?.[kind];
  const name = (...parts) => slug(parts.filter(Boolean).join("_")) || kind;
  switch (kind) {
    case "email":
      if (value?.template) return name("email", value.template);
      return name("email", words(value?.subject).slice(0, 2).join("_"));
    case "wait":
      if (typeof value !== "object" || value === null) return name("wait", value);
      if (value.for) return name("wait", value.for);
      if (value.at) return name("wait", String(value.at).replace(":", ""));
      if (value.until_field) return name("wait", value.until_field);
      return name("wait_until");
    case "wait_for":
      return name("wait_for", value?.event);
    case "if": {
      const quoted = [...String(value ?? "").matchAll(/["']([^"']+)["']/g)].map((m) => m[1]);
      return name("if", quoted.length ? quoted[quoted.length - 1] : words(value).slice(-2).join("_"));
    }
    case "tag":
      if (value?.add?.length) return name("tag", value.add[0]);
      return name("untag", value?.remove?.[0]);
    case "field":
      if (value?.set && Object.keys(value.set).length) return name("set", Object.keys(value.set)[0]);
      return name("remove", value?.remove?.[0]);
    case "webhook":
      return name("webhook", hostLabel(value?.url));
    case "start_flow":
      return name("start", value);
    case "track":
      return name("track", value?.type);
    case "exit":
      return name("exit", value?.reason);
    default:
      return kind || "step";
  }
}

/** Words of a text without its Liquid, for an id: "Welcome, {{ x }}!" → ["welcome"]. */
function words(text) {
  const plain = String(text ?? "").replace(/\{\{.*?\}\}|\{%.*?%\}/g, " ");
  const noise = new Set(["visitor", "event", "details", "fields", "tags", "contains", "and", "or", "not"]);
  return (plain.toLowerCase().match(/[a-z0-9]+/g) || []).filter((w) => !noise.has(w));
}

function hostLabel(url) {
  const host = String(url ?? "").match(/^\w+:\/\/([^/:?#]+)/)?.[1] || "";
  const labels = host.split(".").filter((l) => l && l !== "www" && l !== "hooks" && l !== "api");
  return labels[0] || "";
}

/** A slug as ids must be: [a-z0-9][a-z0-9_-]{0,63} (SPEC §2.2). */
export function slug(text) {
  return String(text ?? "")
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, "_")
    .replace(/_+/g, "_")
    .replace(/^[_-]+|[_-]+$/g, "")
    .slice(0, 60);
}

/** `base`, or `base_2`, `base_3`… whichever no step of `doc` has. */
export function uniqueId(base, doc) {
  const taken = new Set(allSteps(doc).map(({ step, path }) => stepId(step, path)));
  if (!taken.has(base)) return base;
  let n = 2;
  while (taken.has(`${base}_${n}`)) n += 1;
  return `${base}_${n}`;
}

// -- problems ------------------------------------------------------------------------------

/** The keys of a problem loc: `steps[2].then[0].email.subject` →
 * ["steps", 2, "then", 0, "email", "subject"]; `headers["X-Key"]` → [..., "X-Key"]
 * (src/sluice/definitions/values.py key_loc/item_loc). */
export function parseLoc(loc) {
  const keys = [];
  const pattern = /\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]|\.?([^.[\]]+)/g;
  for (const m of String(loc ?? "").matchAll(pattern)) {
    if (m[1] !== undefined) keys.push(Number(m[1]));
    else if (m[2] !== undefined) keys.push(JSON.parse(m[2]));
    else keys.push(m[3]);
  }
  return keys;
}

/**
 * The path of the deepest STEP that a problem's loc lies in, or null for a problem
 * outside the steps (the trigger, the key…). Also reads the `steps[2].if.then[0]`
 * spelling (the branch named under its action).
 */
export function pathOfLoc(loc) {
  const keys = parseLoc(loc);
  if (keys[0] !== "steps" || typeof keys[1] !== "number") return null;
  let path = keys.slice(0, 2);
  let i = 2;
  for (;;) {
    const [a, b, c, d] = keys.slice(i);
    if ((a === "then" || a === "else" || a === "on_timeout") && typeof b === "number") {
      path = [...path, a, b];
      i += 2;
    } else if ((a === "if" || a === "wait_for") && ["then", "else", "on_timeout"].includes(b) && typeof c === "number") {
      path = [...path, b, c];
      i += 3;
    } else if (a === "webhook" && b === "on_failure" && typeof c === "number") {
      path = [...path, a, b, c];
      i += 3;
    } else if (a === "split" && typeof b === "number" && c === "steps" && typeof d === "number") {
      path = [...path, a, b, c, d];
      i += 4;
    } else {
      return path;
    }
  }
}

/** Problems grouped by the step they are in: {pathKey: [problem]}, those outside any
 * step under "" (the trigger box shows them). */
export function problemsByStep(problems) {
  const out = {};
  for (const problem of problems || []) {
    const path = pathOfLoc(problem.loc);
    const key = path ? pathKey(path) : "";
    (out[key] ||= []).push(problem);
  }
  return out;
}

// -- summaries (as the server canvas says them, src/sluice/ui/canvas.py) ---------------------

const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/** What the step does, in a few words. */
export function summary(step) {
  const kind = kindOf(step);
  const v = step?.[kind];
  const text = (x) => (x == null ? "" : String(x));
  switch (kind) {
    case "email":
      if (v?.subject != null) return text(v.subject);
      return v?.template ? `template ${v.template}` : "email";
    case "webhook":
      return `${text(v?.method || "POST").toUpperCase()} ${text(v?.url)}`;
    case "tag":
      return [...list(v?.add).map((t) => `+${t}`), ...list(v?.remove).map((t) => `−${t}`)].join(" ");
    case "field": {
      const parts = [];
      if (v?.set && typeof v.set === "object") parts.push(`set ${Object.keys(v.set).join(", ")}`);
      if (list(v?.remove).length) parts.push(`remove ${list(v.remove).join(", ")}`);
      return parts.join("; ");
    }
    case "subscribe":
    case "unsubscribe":
      return kind;
    case "wait":
      if (v == null || typeof v !== "object") return `wait ${text(v)}`;
      if (v.for) return `wait ${v.for}`;
      if (v.until) return `until ${v.until}`;
      if (v.at) {
        const days = list(v.on).filter((d) => WEEKDAYS.includes(String(d).toLowerCase()));
        return `until ${v.at}${days.length ? ` on ${days.join(", ")}` : ""}`;
      }
      if (v.until_field) {
        const offset = text(v.offset);
        return `until ${v.until_field}${offset ? ` ${offset.startsWith("-") ? "" : "+"}${offset}` : ""}`;
      }
      return "wait";
    case "wait_for":
      return `${text(v?.event)}, up to ${text(v?.timeout)}`;
    case "if":
      return text(v);
    case "split":
      return list(v).map((b) => `${b?.weight ?? "?"}${splitUnit(step)}`).join(" / ");
    case "start_flow":
      return `start ${text(v)}`;
    case "track":
      return `track ${text(v?.type)}`;
    case "exit":
      return v && typeof v === "object" && v.reason ? `exit: ${v.reason}` : "exit";
    default:
      return "unknown step";
  }
}

const list = (x) => (Array.isArray(x) ? x : x == null ? [] : [x]);

/** A `date` trigger's rule in words (model.py `DateRule.describe`): the offset as the
 * server writes it back (`-1w` is `-7d`), `at` 09:00 when not given. */
function describeDate(rule) {
  const date = rule && typeof rule === "object" ? rule : {};
  const seconds = durationSeconds(String(date.offset ?? ""), { signed: true });
  const offset = seconds ? ` ${seconds < 0 ? "" : "+"}${formatDuration(seconds)}` : "";
  const at = typeof date.at === "string" && /^\d:/.test(date.at) ? `0${date.at}` : date.at || "09:00";
  return `date ${date.field ?? ""}${offset}${date.every === "year" ? ", yearly" : ""} at ${at}`;
}

/** The trigger in words, as the server's canvas says it (definitions/model.py
 * `Trigger.describe`): "signed_up, $import", "tag vip added", 'field plan changed to
 * "pro"', "POST /api/hooks/KEY" (`key`: the flow's), "date birthday, yearly at 09:00",
 * "date renews_on -7d at 10:00"; another kind by its key. */
/** A `segment` trigger's value, `KEY` or `{key, on}`, as `{key, on}` (on: entered by
 * default, as the server reads it). */
export function segmentTrigger(value) {
  if (value && typeof value === "object") return { key: value.key ?? "", on: value.on ?? "entered" };
  return { key: value ?? "", on: "entered" };
}

export function describeTrigger(trigger, key = "") {
  if (!trigger || typeof trigger !== "object") return "";
  if ("webhook" in trigger) return `POST /api/hooks/${key}`;
  if ("date" in trigger) return describeDate(trigger.date);
  if ("segment" in trigger) {
    const { key: segment, on } = segmentTrigger(trigger.segment);
    return `segment ${segment} ${on}`;
  }
  if ("tag_added" in trigger) return `tag ${trigger.tag_added} added`;
  if ("field_changed" in trigger) {
    const changed = trigger.field_changed;
    if (changed && typeof changed === "object") {
      return `field ${changed.field} changed${"to" in changed ? ` to ${JSON.stringify(changed.to)}` : ""}`;
    }
    return `field ${changed} changed`;
  }
  return [].concat(trigger.event ?? []).join(", ") || Object.keys(trigger).filter((k) => k !== "if").join(", ");
}
