import { describe, expect, it } from "vitest";
import {
  describeTrigger,
  KINDS,
  addBranch,
  allSteps,
  branchesOf,
  findStep,
  insertStep,
  moveStep,
  newStep,
  parseLoc,
  pathOfLoc,
  problemsByStep,
  removeBranch,
  removeStep,
  stepAt,
  stepId,
  suggestId,
  summary,
  uniqueId,
  updateStep,
} from "./document.js";

// The onboarding example of SPEC §2 (/work/shared/examples/onboarding.yaml), as loaded.
const onboarding = () => ({
  key: "onboarding",
  name: "Onboarding",
  trigger: { event: "$signup", if: 'event.details.plan != "enterprise"' },
  steps: [
    { id: "welcome", email: { subject: "Welcome!", html: "<p>Hi</p>" } },
    { id: "settle", wait: "2d" },
    {
      id: "activated",
      if: 'visitor.tags contains "activated"',
      then: [{ id: "mark_engaged", tag: { add: ["engaged"] } }],
      else: [
        { id: "nudge", email: { template: "nudge" } },
        {
          id: "wait_setup",
          wait_for: { event: "completed_setup", timeout: "3d" },
          on_timeout: [{ id: "tell_crm", webhook: { url: "https://crm.example.com/hooks/stalled" } }],
        },
      ],
    },
    { id: "done", field: { set: { onboarded_at: "{{ now }}" } } },
  ],
});

// The flow /flows/_new starts from (src/sluice/ui/editing.py NEW_FLOW).
const newFlow = () => ({
  key: "my-flow",
  trigger: { event: "$signup" },
  steps: [{ id: "email_welcome", email: { subject: "Welcome!", html: "<p>Hi</p>" } }],
});

const ids = (doc) => allSteps(doc).map(({ step, path }) => stepId(step, path));

describe("reading", () => {
  it("walks every step depth first, branches included", () => {
    expect(ids(onboarding())).toEqual([
      "welcome", "settle", "activated", "mark_engaged", "nudge", "wait_setup", "tell_crm", "done",
    ]);
  });

  it("finds a step by id, and names a step without one by its path", () => {
    const doc = onboarding();
    expect(findStep(doc, "tell_crm")).toEqual(["steps", 2, "else", 1, "on_timeout", 0]);
    const bare = { steps: [{ if: "true", then: [{ exit: true }] }] };
    expect(ids(bare)).toEqual(["steps.0", "steps.0.then.0"]);
    expect(findStep(doc, "nope")).toBeNull();
  });

  it("lists the branches of if, wait_for, split and a webhook's on_failure", () => {
    const doc = onboarding();
    expect(branchesOf(stepAt(doc, ["steps", 2]), ["steps", 2]).map((b) => [b.name, b.label, b.present])).toEqual([
      ["then", "then", true],
      ["else", "else", true],
    ]);
    const waitFor = stepAt(doc, ["steps", 2, "else", 1]);
    expect(branchesOf(waitFor, ["x"]).map((b) => [b.label, b.present])).toEqual([
      ["on completed_setup", false],
      ["on timeout", true],
    ]);
    const split = { split: [{ weight: 70, steps: [] }, { weight: 30, steps: [] }] };
    expect(branchesOf(split, ["steps", 0]).map((b) => [b.label, b.lane])).toEqual([
      ["70%", ["steps", 0, "split", 0, "steps"]],
      ["30%", ["steps", 0, "split", 1, "steps"]],
    ]);
    expect(branchesOf({ webhook: { url: "u" } }, ["s"])).toEqual([]);
    expect(branchesOf({ webhook: { url: "u", on_failure: [] } }, ["s"])[0].lane).toEqual([
      "s", "webhook", "on_failure",
    ]);
  });
});

describe("editing", () => {
  it("inserts at any slot, creating a missing branch, without changing the original", () => {
    const doc = onboarding();
    const before = JSON.stringify(doc);
    const step = { id: "x", exit: true };
    expect(ids(insertStep(doc, ["steps"], 0, step))[0]).toBe("x");
    expect(ids(insertStep(doc, ["steps"], 99, step)).at(-1)).toBe("x");
    const nested = insertStep(doc, ["steps", 2, "else", 1, "then"], 0, step);
    expect(stepAt(nested, ["steps", 2, "else", 1, "then", 0])).toBe(step);
    expect(JSON.stringify(doc)).toBe(before);
    expect(nested.steps[0]).toBe(doc.steps[0]); // untouched parts are shared
  });

  it("removes a step with its branches, and updates one", () => {
    const doc = onboarding();
    expect(ids(removeStep(doc, ["steps", 2]))).toEqual(["welcome", "settle", "done"]);
    expect(ids(removeStep(doc, ["steps", 2, "then", 0]))).not.toContain("mark_engaged");
    expect(stepAt(removeStep(doc, ["steps", 2, "then", 0]), ["steps", 2]).then).toEqual([]);
    const changed = updateStep(doc, ["steps", 1], { id: "settle", wait: "1m" });
    expect(changed.steps[1].wait).toBe("1m");
    expect(doc.steps[1].wait).toBe("2d");
  });

  it("moves a step within its lane, in both directions", () => {
    const doc = onboarding();
    // welcome to the slot before done (index 3 as the lane is before the move)
    const down = moveStep(doc, ["steps", 0], ["steps"], 3);
    expect(down.doc.steps.map((s) => s.id)).toEqual(["settle", "activated", "welcome", "done"]);
    expect(down.path).toEqual(["steps", 2]);
    const up = moveStep(doc, ["steps", 3], ["steps"], 0);
    expect(up.doc.steps.map((s) => s.id)).toEqual(["done", "welcome", "settle", "activated"]);
    const end = moveStep(doc, ["steps", 0], ["steps"], 4);
    expect(end.doc.steps.map((s) => s.id)).toEqual(["settle", "activated", "done", "welcome"]);
  });

  it("moves a step into a branch that comes after it, and out of a branch", () => {
    const doc = onboarding();
    const into = moveStep(doc, ["steps", 1], ["steps", 2, "else", 1, "on_timeout"], 1);
    expect(into.path).toEqual(["steps", 1, "else", 1, "on_timeout", 1]);
    expect(stepAt(into.doc, into.path).id).toBe("settle");
    expect(ids(into.doc)).toEqual([
      "welcome", "activated", "mark_engaged", "nudge", "wait_setup", "tell_crm", "settle", "done",
    ]);
    const out = moveStep(doc, ["steps", 2, "else", 1, "on_timeout", 0], ["steps"], 0);
    expect(ids(out.doc)[0]).toBe("tell_crm");
    expect(stepAt(out.doc, ["steps", 3, "else", 1]).on_timeout).toEqual([]);
  });

  it("refuses to move a step into its own branches", () => {
    expect(() => moveStep(onboarding(), ["steps", 2], ["steps", 2, "then"], 0)).toThrow(/own branches/);
  });

  it("adds and removes the branches of if, wait_for, split and webhook", () => {
    let doc = { key: "f", steps: [
      { id: "c", if: "true" },
      { id: "w", wait_for: { event: "e", timeout: "1d" } },
      { id: "s", split: [{ weight: 1, steps: [] }] },
      { id: "h", webhook: { url: "https://x.test" } },
    ] };
    doc = addBranch(doc, ["steps", 0], "else");
    doc = addBranch(doc, ["steps", 1], "on_timeout");
    doc = addBranch(doc, ["steps", 2], "split");
    doc = addBranch(doc, ["steps", 3], "on_failure");
    expect(doc.steps[0].else).toEqual([]);
    expect(doc.steps[1].on_timeout).toEqual([]);
    expect(doc.steps[2].split).toHaveLength(2);
    expect(doc.steps[3].webhook.on_failure).toEqual([]);
    expect(() => addBranch(doc, ["steps", 0], "on_timeout")).toThrow();

    doc = removeBranch(doc, ["steps", 0], "else");
    doc = removeBranch(doc, ["steps", 3], "on_failure");
    doc = removeBranch(doc, ["steps", 2], 0);
    expect("else" in doc.steps[0]).toBe(false);
    expect("on_failure" in doc.steps[3].webhook).toBe(false);
    expect(doc.steps[2].split).toEqual([{ weight: 50, steps: [] }]);
    expect(() => removeBranch(doc, ["steps", 2], 0)).toThrow(/at least one/);
  });
});

describe("new steps", () => {
  it("makes a step of every kind of SPEC §2.2 with one action and an id", () => {
    const doc = newFlow();
    const kinds = KINDS.map((k) => k.kind);
    expect(kinds).toEqual([
      "email", "wait", "wait_for", "if", "split", "tag", "field", "subscribe", "unsubscribe",
      "webhook", "start_flow", "track", "exit",
    ]);
    for (const kind of kinds) {
      const step = newStep(kind, doc, { flows: ["my-flow", "other"] });
      expect(step.id).toMatch(/^[a-z0-9][a-z0-9_-]{0,63}$/);
      expect(Object.keys(step).filter((k) => kinds.includes(k))).toEqual([kind]);
    }
    expect(newStep("start_flow", doc, { flows: ["my-flow", "other"] }).start_flow).toBe("other");
    expect(() => newStep("teleport", doc)).toThrow();
  });

  it("names a step from what it does", () => {
    expect(newStep("wait", newFlow()).id).toBe("wait_1d");
    expect(newStep("tag", newFlow()).id).toBe("tag_engaged");
    expect(newStep("if", newFlow()).id).toBe("if_vip");
    expect(suggestId({ email: { subject: "Welcome, {{ visitor.first_name }}!" } })).toBe("email_welcome");
    expect(suggestId({ email: { template: "nudge" } })).toBe("email_nudge");
    expect(suggestId({ wait: { at: "09:00", on: ["mon"] } })).toBe("wait_0900");
    expect(suggestId({ wait: { until_field: "trial_ends_at", offset: "-3d" } })).toBe("wait_trial_ends_at");
    expect(suggestId({ wait_for: { event: "$purchase" } })).toBe("wait_for_purchase");
    expect(suggestId({ webhook: { url: "https://crm.example.com/x" } })).toBe("webhook_crm");
    expect(suggestId({ field: { remove: ["plan"] } })).toBe("remove_plan");
    expect(suggestId({ tag: { remove: ["Cart Abandoner"] } })).toBe("untag_cart_abandoner");
    expect(suggestId({ exit: { reason: "purchased" } })).toBe("exit_purchased");
    expect(suggestId({ exit: true })).toBe("exit");
    expect(suggestId({ subscribe: true })).toBe("subscribe");
  });

  it("keeps ids unique in the document", () => {
    let doc = newFlow();
    for (let i = 0; i < 3; i += 1) doc = insertStep(doc, ["steps"], 9, newStep("wait", doc));
    expect(ids(doc)).toEqual(["email_welcome", "wait_1d", "wait_1d_2", "wait_1d_3"]);
    expect(uniqueId("email_welcome", doc)).toBe("email_welcome_2");
  });
});

describe("problems", () => {
  it("parses locs as the server writes them", () => {
    expect(parseLoc("steps[2].then[0].email.subject")).toEqual(["steps", 2, "then", 0, "email", "subject"]);
    expect(parseLoc('steps[0].webhook.headers["X Key"]')).toEqual(["steps", 0, "webhook", "headers", "X Key"]);
    expect(parseLoc("trigger.if")).toEqual(["trigger", "if"]);
  });

  it("maps a loc to the deepest step holding it", () => {
    expect(pathOfLoc("steps[2].then[0].email.subject")).toEqual(["steps", 2, "then", 0]);
    expect(pathOfLoc("steps[2].if.then[0].email.subject")).toEqual(["steps", 2, "then", 0]);
    expect(pathOfLoc("steps[2].else[1].on_timeout[0].webhook.url")).toEqual([
      "steps", 2, "else", 1, "on_timeout", 0,
    ]);
    expect(pathOfLoc("steps[3].webhook.on_failure[0].tag.add[1]")).toEqual([
      "steps", 3, "webhook", "on_failure", 0,
    ]);
    expect(pathOfLoc("steps[4].split[1].steps[0].email")).toEqual(["steps", 4, "split", 1, "steps", 0]);
    expect(pathOfLoc("steps[4].split[1].weight")).toEqual(["steps", 4]);
    expect(pathOfLoc("steps[1].id")).toEqual(["steps", 1]);
    expect(pathOfLoc("steps")).toBeNull();
    expect(pathOfLoc("trigger.event")).toBeNull();
    expect(pathOfLoc("")).toBeNull();
  });

  it("groups problems by step, those outside steps under ''", () => {
    const grouped = problemsByStep([
      { loc: "steps[0].email.subject", msg: "a" },
      { loc: "steps[0].id", msg: "b" },
      { loc: "trigger", msg: "c" },
    ]);
    expect(Object.keys(grouped).sort()).toEqual(["", "steps.0"]);
    expect(grouped["steps.0"].map((p) => p.msg)).toEqual(["a", "b"]);
  });
});

describe("summaries", () => {
  it("says what each step does as the server canvas does", () => {
    const doc = onboarding();
    expect(allSteps(doc).map(({ step }) => summary(step))).toEqual([
      "Welcome!",
      "wait 2d",
      'visitor.tags contains "activated"',
      "+engaged",
      "template nudge",
      "completed_setup, up to 3d",
      "POST https://crm.example.com/hooks/stalled",
      "set onboarded_at",
    ]);
    expect(summary({ wait: { until_field: "trial_ends_at", offset: "-3d" } })).toBe("until trial_ends_at -3d");
    expect(summary({ wait: { at: "09:00", on: ["mon", "tue"] } })).toBe("until 09:00 on mon, tue");
    expect(summary({ split: [{ weight: 1 }, { weight: 3 }] })).toBe("1 / 3");
    expect(summary({ exit: { reason: "converted" } })).toBe("exit: converted");
  });
});

describe("describeTrigger", () => {
  it("says a trigger as the server's canvas does", () => {
    expect(describeTrigger({ event: ["signed_up", "$import"] })).toBe("signed_up, $import");
    expect(describeTrigger({ tag_added: "vip", if: "true" })).toBe("tag vip added");
    expect(describeTrigger({ field_changed: "plan" })).toBe("field plan changed");
    expect(describeTrigger({ field_changed: { field: "plan", to: "pro" } })).toBe('field plan changed to "pro"');
    expect(describeTrigger({ webhook: { email: "{{ body.email }}" } }, "paid")).toBe("POST /api/hooks/paid");
    expect(describeTrigger({ segment: "vip" })).toBe("segment vip entered");
    expect(describeTrigger({ segment: { key: "vip", on: "left" } })).toBe("segment vip left");
  });

  it("says a date trigger as Trigger.describe does: offset written back, 09:00 by default", () => {
    expect(describeTrigger({ date: { field: "birthday", at: "09:00", every: "year" } })).toBe("date birthday, yearly at 09:00");
    expect(describeTrigger({ date: { field: "renews_on", offset: "-1w", at: "10:00" } })).toBe("date renews_on -7d at 10:00");
    expect(describeTrigger({ date: { field: "d", offset: "1d12h" } })).toBe("date d +1d12h at 09:00");
    expect(describeTrigger({ date: { field: "d", offset: "0s", at: "7:30" } })).toBe("date d at 07:30");
  });
});
