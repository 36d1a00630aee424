import { cleanup, fireEvent, render, screen } from "@testing-library/preact";
import { useState } from "preact/hooks";
import { afterEach, describe, expect, it, vi } from "vitest";
import { panels } from "./index.js";

afterEach(cleanup);

/** The panel as the builder holds it: each change becomes the step it shows next. */
function Harness({ Panel, step, onChange, context }) {
  const [current, setCurrent] = useState(step);
  return (
    <Panel
      step={current}
      onChange={(next) => {
        onChange(next);
        setCurrent(next);
      }}
      context={context}
    />
  );
}

/** Render the panel of `step` (or `Panel` with it) and answer the mock that records
 * every onChange. */
function open(step, context = {}, Panel = null) {
  const onChange = vi.fn();
  const kind = Object.keys(step).find((k) => k !== "id" && panels[k]);
  const full = { flows: [], templates: [], problems: [], ...context };
  const view = render(<Harness Panel={Panel ?? panels[kind]} step={step} onChange={onChange} context={full} />);
  return { onChange, view, last: () => onChange.mock.calls.at(-1)[0] };
}

const type = (label, value) => fireEvent.input(screen.getByLabelText(label), { target: { value } });

describe("every kind has a panel", () => {
  it.each(["email", "webhook", "tag", "field", "subscribe", "unsubscribe", "wait", "wait_for", "if", "split", "start_flow", "track", "exit", "trigger"])("%s", (kind) => {
    expect(typeof panels[kind]).toBe("function");
  });
});

describe("the step id", () => {
  it("changes the step's id, and flags one that is not a slug", () => {
    const { onChange, last } = open({ id: "settle", wait: "2d" });
    type("Step id", "Settle Down");
    expect(last()).toEqual({ id: "Settle Down", wait: "2d" });
    expect(screen.getByLabelText("Step id").getAttribute("aria-invalid")).toBe("true");
    expect(screen.getByRole("alert").textContent).toContain("invalid id 'Settle Down'");
    type("Step id", "");
    expect(last()).toEqual({ wait: "2d" });
    expect(onChange).toHaveBeenCalledTimes(2);
  });
});

describe("wait", () => {
  it("keeps the short form and flags a bad duration as typed, with the server's way of saying it", () => {
    const { last } = open({ id: "settle", wait: "2d" });
    type("How long", "2 days");
    expect(last()).toEqual({ id: "settle", wait: "2 days" });
    const input = screen.getByLabelText("How long");
    expect(input.getAttribute("aria-invalid")).toBe("true");
    expect(screen.getByRole("alert").textContent).toBe("invalid duration '2 days' (use 2d)");
    type("How long", "1m");
    expect(last()).toEqual({ id: "settle", wait: "1m" });
  });

  it("switches to a time of day on weekdays", () => {
    const { last } = open({ id: "morning", wait: "2d" });
    fireEvent.change(screen.getByLabelText("Wait"), { target: { value: "at" } });
    expect(last()).toEqual({ id: "morning", wait: { at: "09:00" } });
    fireEvent.click(screen.getByLabelText("Friday"));
    expect(last()).toEqual({ id: "morning", wait: { at: "09:00", on: ["fri"] } });
    fireEvent.click(screen.getByLabelText("Monday"));
    expect(last().wait.on).toEqual(["mon", "fri"]);
  });

  it("until a field: a negative offset is fine, a bad one flagged", () => {
    const { last } = open({ id: "before_end", wait: { until_field: "trial_ends_at", offset: "-3d" } });
    expect(screen.getByLabelText("Field holding the date").value).toBe("trial_ends_at");
    expect(screen.getByLabelText(/Offset/).getAttribute("aria-invalid")).toBeNull();
    type("Offset (before: a minus sign)", "-3 days");
    expect(last().wait).toEqual({ until_field: "trial_ends_at", offset: "-3 days" });
    expect(screen.getByRole("alert").textContent).toContain("use -3d");
  });

  it("says a problem once when the server says what the typed check says", () => {
    const said = { loc: "steps[0].wait", msg: "invalid duration '2 days' (use 2d)" };
    open({ id: "w", wait: "2 days" }, { problems: [said] });
    expect(screen.getByLabelText("How long").getAttribute("aria-invalid")).toBe("true");
    const underInput = document.getElementById(screen.getByLabelText("How long").getAttribute("aria-describedby").split(" ").at(-1));
    expect(underInput.textContent).toBe("invalid duration '2 days' (use 2d)");
  });

  it("shows the server's problems for the step", () => {
    open({ id: "w", wait: "2d" }, { problems: [{ loc: "steps[1].wait", msg: "something the server says" }] });
    expect(screen.getByLabelText("How long").getAttribute("aria-invalid")).toBe("true");
    expect(screen.getByRole("region", { name: "Problems in this step" }).textContent).toContain("wait something the server says");
  });
});

describe("email", () => {
  const templates = [{ key: "nudge", subject: "Need a hand?" }];

  it("edits the subject and the sender, flagging an address that is none", () => {
    const { last } = open({ id: "welcome", email: { subject: "Hi", html: "<p>Hi</p>" } }, { templates });
    type("Subject", "Welcome, {{ visitor.first_name }}!");
    expect(last()).toEqual({ id: "welcome", email: { subject: "Welcome, {{ visitor.first_name }}!", html: "<p>Hi</p>" } });
    type("From (default: the server's sender)", "not an address");
    expect(screen.getByRole("alert").textContent).toBe("'not an address' is not an email address");
  });

  it("picks a template instead of the inline content", () => {
    const { last } = open({ id: "welcome", email: { subject: "Hi", html: "<p>Hi</p>" } }, { templates });
    fireEvent.click(screen.getByLabelText("A stored template"));
    // The inline subject goes too: it would hide the template's own.
    expect(last()).toEqual({ id: "welcome", email: { template: "nudge" } });
    // Changing one's mind brings back what was written.
    fireEvent.click(screen.getByLabelText("Written here"));
    expect(last()).toEqual({ id: "welcome", email: { subject: "Hi", html: "<p>Hi</p>" } });
  });

  it("brings the written content back even after the panel was closed", () => {
    const { last } = open({ id: "hello", email: { subject: "Hi", html: "<p>Hi</p>" } }, { templates });
    fireEvent.click(screen.getByLabelText("A stored template"));
    const withTemplate = last();
    cleanup(); // the panel closes; another box is opened, then this one again
    const again = open(withTemplate, { templates });
    fireEvent.click(screen.getByLabelText("Written here"));
    expect(again.last()).toEqual({ id: "hello", email: { subject: "Hi", html: "<p>Hi</p>" } });
  });

  it("turns tracking off and transactional on", () => {
    const { last } = open({ email: { template: "nudge" } }, { templates });
    fireEvent.click(screen.getByLabelText("Track opens and clicks"));
    expect(last()).toEqual({ email: { template: "nudge", track: false } });
    fireEvent.click(screen.getByLabelText("Transactional"));
    expect(last()).toEqual({ email: { template: "nudge", track: false, transactional: true } });
  });
});

describe("if", () => {
  it("shows a condition of the common shapes as rows, and edits it", () => {
    const { last } = open({ id: "activated", if: 'visitor.tags contains "activated"', then: [], else: [] });
    expect(screen.getByLabelText("Condition 1: what").value).toBe("tag");
    type("Tag", "vip");
    expect(last()).toEqual({ id: "activated", if: 'visitor.tags contains "vip"', then: [], else: [] });
    fireEvent.click(screen.getByText("Add a condition"));
    type("Field name", "plan");
    type("Value", "trial");
    expect(last().if).toBe('visitor.tags contains "vip" and visitor.fields.plan == "trial"');
    fireEvent.change(screen.getByLabelText("Match"), { target: { value: "or" } });
    expect(last().if).toBe('visitor.tags contains "vip" or visitor.fields.plan == "trial"');
  });

  it("keeps anything else as Liquid, always one click away", () => {
    const { last } = open({ if: '(visitor.tags contains "a" or visitor.tags contains "b") and event.details.n > 1' });
    const box = screen.getByLabelText("Condition in Liquid");
    expect(box.value).toContain("(visitor.tags");
    fireEvent.input(box, { target: { value: "visitor.fields.x != blank" } });
    expect(last()).toEqual({ if: "visitor.fields.x != blank" });
  });

  it("flags a number that is none", () => {
    open({ if: "event.details.amount > 100" });
    type("Value", "a lot");
    expect(screen.getByRole("alert").textContent).toContain("'a lot' is not a number");
  });
});

describe("the other kinds", () => {
  it("tag: lists typed with commas", () => {
    const { last } = open({ id: "mark", tag: { add: ["engaged"] } });
    type("Add tags", "engaged, vip");
    expect(last()).toEqual({ id: "mark", tag: { add: ["engaged", "vip"] } });
    type("Remove tags", "cold");
    expect(last()).toEqual({ id: "mark", tag: { add: ["engaged", "vip"], remove: ["cold"] } });
  });

  it("field: set a value, keeping a number a number", () => {
    const { last } = open({ field: { set: { score: 1, onboarded_at: "{{ now }}" } } });
    type("Value 1", "5");
    expect(last()).toEqual({ field: { set: { score: 5, onboarded_at: "{{ now }}" } } });
  });

  it("webhook: URL checked as typed, headers and retries", () => {
    const { last } = open({ id: "tell_crm", webhook: { url: "https://crm.example.com/hooks" } });
    type("URL", "crm.example.com");
    expect(screen.getByRole("alert").textContent).toBe("expected an http:// or https:// URL");
    fireEvent.click(screen.getByText("Add header"));
    type("Header 1", "X-Token");
    type("Value 1", "secret");
    expect(last().webhook.headers).toEqual({ "X-Token": "secret" });
    type("URL", "https://x.example");
    type("Attempts (optional)", "5");
    expect(last()).toEqual({ id: "tell_crm", webhook: { url: "https://x.example", headers: { "X-Token": "secret" }, retries: 5 } });
  });

  it("webhook: a JSON body is stored when it parses", () => {
    const { last } = open({ webhook: { url: "https://x.example", body: { a: { b: 1 } } } });
    const box = screen.getByLabelText(/Body \(JSON/);
    fireEvent.input(box, { target: { value: '{"a": ' } });
    expect(screen.getByRole("alert").textContent).toMatch(/^not JSON/);
    fireEvent.input(box, { target: { value: '{"email": "{{ visitor.email }}"}' } });
    expect(last()).toEqual({ webhook: { url: "https://x.example", body: { email: "{{ visitor.email }}" } } });
  });

  it("split: weights and the share each makes", () => {
    const { last } = open({ id: "ab", split: [{ weight: 50, steps: [] }, { weight: 50, steps: [] }] });
    type("Branch 1 weight", "75");
    expect(last().split.map((b) => b.weight)).toEqual([75, 50]);
    expect(screen.getByText("60% of visitors")).toBeTruthy();
    expect(screen.getByText("40% of visitors")).toBeTruthy();
  });

  it("start_flow: picks a known flow", () => {
    const { last } = open({ start_flow: "nudge" }, { flows: ["nudge", "onboarding"] });
    fireEvent.change(screen.getByLabelText("Flow"), { target: { value: "onboarding" } });
    expect(last()).toEqual({ start_flow: "onboarding" });
  });

  it("subscribe turns into unsubscribe in place", () => {
    const { last } = open({ id: "sub", subscribe: true });
    fireEvent.change(screen.getByLabelText("The visitor's subscription"), { target: { value: "unsubscribe" } });
    expect(last()).toEqual({ id: "sub", unsubscribe: true });
  });

  it("track and exit", () => {
    const first = open({ track: { type: "onboarded" } });
    type("Event type", "finished");
    expect(first.last()).toEqual({ track: { type: "finished" } });
    cleanup();
    const second = open({ exit: true });
    type("Reason (optional)", "purchased");
    expect(second.last()).toEqual({ exit: { reason: "purchased" } });
  });

  it("wait_for: event, condition on the awaited event, timeout", () => {
    const { last } = open({ id: "wait_setup", wait_for: { event: "completed_setup", timeout: "3d" }, on_timeout: [] });
    type("Give up after", "3 days");
    expect(last().wait_for.timeout).toBe("3 days");
    expect(screen.getByRole("alert").textContent).toContain("use 3d");
  });
});

describe("the flow settings", () => {
  const doc = { key: "onboarding", trigger: { event: "$signup" }, steps: [{ wait: "1d" }] };

  it("edits the events, the condition and the cooldown", () => {
    const { last } = open(doc, { flowKey: "onboarding" }, panels.trigger);
    type("Started by events of type", "$signup, $import");
    expect(last().trigger).toEqual({ event: ["$signup", "$import"] });
    fireEvent.click(screen.getAllByText("Add a condition")[0]);
    type("Field name", "plan");
    type("Value", "enterprise");
    fireEvent.change(screen.getByLabelText("Test"), { target: { value: "is_not" } });
    expect(last().trigger.if).toBe('visitor.fields.plan != "enterprise"');
    type("Cooldown (optional)", "30 days");
    expect(screen.getByRole("alert").textContent).toContain("use 30d");
    expect(screen.getByLabelText("Key").readOnly).toBe(true);
  });

  it("switches to a tag added or a field changed, keeping the condition", () => {
    const { last } = open({ ...doc, trigger: { event: "$signup", if: "true" } }, {}, panels.trigger);
    fireEvent.change(screen.getByLabelText("Started when"), { target: { value: "tag_added" } });
    expect(last().trigger).toEqual({ tag_added: "", if: "true" });
    expect(screen.queryByLabelText("Started by events of type")).toBeNull();
    type("Tag", "vip");
    expect(last().trigger).toEqual({ tag_added: "vip", if: "true" });

    fireEvent.change(screen.getByLabelText("Started when"), { target: { value: "field_changed" } });
    type("Field", "plan");
    expect(last().trigger).toEqual({ field_changed: "plan", if: "true" });
    type("Changed to (optional)", "5");
    expect(last().trigger.field_changed).toEqual({ field: "plan", to: 5 });
    type("Changed to (optional)", "007");
    expect(last().trigger.field_changed).toEqual({ field: "plan", to: "007" });
    type("Changed to (optional)", "pro");
    expect(last().trigger.field_changed).toEqual({ field: "plan", to: "pro" });
    type("Changed to (optional)", "");
    expect(last().trigger.field_changed).toBe("plan");
    type("Field", "");
    expect(screen.getByRole("alert").textContent).toContain("a field is required");

    fireEvent.change(screen.getByLabelText("Started when"), { target: { value: "webhook" } });
    expect(last().trigger).toEqual({ webhook: { email: "{{ body.email }}" }, if: "true" });
    type("Visitor's email, from the body", "{{ body.customer.email }}");
    expect(last().trigger.webhook).toEqual({ email: "{{ body.customer.email }}" });
    type("Repeat key (optional)", "{{ body.id }}");
    expect(last().trigger.webhook).toEqual({ email: "{{ body.customer.email }}", idempotency_key: "{{ body.id }}" });
    type("Repeat key (optional)", "");
    expect(last().trigger.webhook).toEqual({ email: "{{ body.customer.email }}" });
  });

  it("switches to a date arriving: field, offset, time of day, every year", () => {
    const { last } = open({ ...doc, trigger: { event: "$signup", if: "true" } }, {}, panels.trigger);
    fireEvent.change(screen.getByLabelText("Started when"), { target: { value: "date" } });
    expect(last().trigger).toEqual({ date: { field: "", at: "09:00" }, if: "true" });
    type("Date field", "renews_on");
    type("Offset (optional)", "-7 days");
    expect(screen.getByRole("alert").textContent).toContain("use -7d");
    type("Offset (optional)", "-7d");
    type("At (the visitor's time zone)", "10:00");
    expect(last().trigger.date).toEqual({ field: "renews_on", at: "10:00", offset: "-7d" });
    fireEvent.click(screen.getByLabelText("Every year, on its month and day"));
    expect(last().trigger.date.every).toBe("year");
    fireEvent.click(screen.getByLabelText("Every year, on its month and day"));
    expect("every" in last().trigger.date).toBe(false);
    type("Offset (optional)", "");
    type("At (the visitor's time zone)", "");
    expect(last().trigger.date).toEqual({ field: "renews_on" });
    type("Date field", "");
    expect(screen.getByRole("alert").textContent).toContain("a field is required");
  });

  it("shows the server's problems of a date trigger where they are", () => {
    const problems = [{ loc: "trigger.date.every", msg: "invalid value 'month' (use year: a date comes again each year; leave every out for once)" }];
    open({ ...doc, trigger: { date: { field: "birthday", every: "month" } } }, { problems }, panels.trigger);
    expect(screen.getByLabelText("Started when").value).toBe("date");
    expect(screen.getAllByRole("alert").map((a) => a.textContent)).toContain(problems[0].msg);
  });

  it("adds a goal", () => {
    const { last } = open(doc, { problems: [{ loc: "timezone", msg: "unknown time zone 'Mars/Base'" }] }, panels.trigger);
    fireEvent.click(screen.getByText("Add a goal"));
    expect(last().exit).toEqual([{ event: "" }]);
    type("Goal 1: event type", "$purchase");
    expect(last().exit).toEqual([{ event: "$purchase" }]);
    expect(screen.getByLabelText("Time zone (optional)").getAttribute("aria-invalid")).toBe("true");
  });
});
