import { cleanup, fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { panels } from "./panels/index.js";
import { firstTriggerEvent, pathOf, stepsWithIds, TryOut } from "./tryout.jsx";

// The server is stubbed at the network boundary only: `fetch` answers as the API does.
let calls;
let routes;

function answer(status, data) {
  return { ok: status >= 200 && status < 300, status, json: async () => data };
}

beforeEach(() => {
  calls = [];
  routes = {};
  vi.stubGlobal("fetch", async (url, options = {}) => {
    const call = { url, method: options.method ?? "GET", headers: options.headers ?? {}, body: options.body ? JSON.parse(options.body) : undefined };
    calls.push(call);
    const path = url.split("?")[0];
    const route = routes[`${call.method} ${path}`];
    return route ? route(call) : answer(404, { detail: "Not Found" });
  });
});

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

const DOCUMENT = {
  key: "onboarding",
  trigger: { event: "$signup" },
  steps: [
    { id: "welcome", email: { subject: "Welcome, {{ visitor.first_name }}!", html: "<p>Hi</p>" } },
    { id: "settle", wait: "2d" },
    { if: 'visitor.tags contains "vip"', then: [{ email: { template: "nudge" } }] },
  ],
};

const ADA = { email: "ada@example.com", uuid: "u", fields: { first_name: "Ada" }, tags: ["vip"], subscribed: true, unsubscribed_at: null, created_at: "2026-11-30T00:00:00Z" };

function renderRoute() {
  routes["POST /api/emails/render"] = ({ body }) => {
    const name = body.visitor_email ? "Ada" : body.visitor.fields.first_name ?? "";
    const subject = body.email.template ? `Need a hand, ${name}?` : body.email.subject.replace("{{ visitor.first_name }}", name);
    return answer(200, { subject, html: "<p>Hi</p>", text: "Hi", problems: [] });
  };
}

describe("the steps and the path", () => {
  it("gives every step the id the engine gives it", () => {
    expect(stepsWithIds(DOCUMENT).map((s) => s.id)).toEqual(["welcome", "settle", "steps.2", "steps.2.then.0"]);
    const split = { steps: [{ split: [{ weight: 1, steps: [{ exit: true }] }] }, { webhook: { url: "u", on_failure: [{ tag: { add: ["x"] } }] } }] };
    expect(stepsWithIds(split).map((s) => s.id)).toEqual(["steps.0", "steps.0.split.0.steps.0", "steps.1", "steps.1.webhook.on_failure.0"]);
  });

  it("reads the path from the step entries of the timeline", () => {
    const timeline = ["entered", "step:welcome", "email_sent:welcome", "step:settle", "step:settle", "step:done"].map((s) => {
      const [kind, step] = s.split(":");
      return { kind, step: step ?? null };
    });
    expect(pathOf({ sessions: [{ timeline }] })).toEqual(["welcome", "settle", "done"]);
  });
});

describe("see it as a visitor", () => {
  it("finds a real visitor, and renders every email's subject for them", async () => {
    routes["GET /api/visitors"] = () => answer(200, [ADA]);
    renderRoute();
    const onChange = vi.fn();
    render(<TryOut document={DOCUMENT} flowKey="onboarding" csrf="token-1" onChange={onChange} />);
    fireEvent.input(screen.getByLabelText("Find a visitor"), { target: { value: "ada" } });
    await waitFor(() => expect(calls.some((c) => c.url === "/api/visitors?q=ada&limit=10")).toBe(true));
    expect(calls.at(-1).headers["X-CSRF-Token"]).toBe("token-1");
    fireEvent.click(await screen.findByRole("button", { name: "ada@example.com" }));
    expect(screen.getByTestId("tryout-visitor").textContent).toBe("ada@example.com");
    await waitFor(() => expect(onChange.mock.calls.at(-1)[0].rendered).toEqual({
      welcome: { subject: "Welcome, Ada!", problems: [] },
      "steps.2.then.0": { subject: "Need a hand, Ada?", problems: [] },
    }));
    const renders = calls.filter((c) => c.url === "/api/emails/render");
    expect(renders.map((c) => c.body.visitor_email)).toEqual(["ada@example.com", "ada@example.com"]);
    expect(renders[0].body).toMatchObject({ email: DOCUMENT.steps[0].email, flow: "onboarding" });
    expect(onChange.mock.calls.at(-1)[0].visitor).toEqual({ email: "ada@example.com", fields: { first_name: "Ada" }, tags: ["vip"], real: true });
  });

  it("makes a visitor up, flagging an email that is none", async () => {
    renderRoute();
    const onChange = vi.fn();
    render(<TryOut document={DOCUMENT} flowKey="onboarding" csrf="t" onChange={onChange} />);
    fireEvent.click(screen.getByLabelText("Make one up"));
    fireEvent.input(screen.getByLabelText("Email"), { target: { value: "ann" } });
    expect(screen.getByRole("alert").textContent).toBe("'ann' is not an email address");
    fireEvent.input(screen.getByLabelText("Email"), { target: { value: "ann@example.com" } });
    fireEvent.click(screen.getByText("Add field"));
    fireEvent.input(screen.getByLabelText("Field 1"), { target: { value: "first_name" } });
    fireEvent.input(screen.getByLabelText("Value 1"), { target: { value: "Ann" } });
    await waitFor(() => expect(onChange.mock.calls.at(-1)[0].rendered.welcome?.subject).toBe("Welcome, Ann!"));
    const last = calls.filter((c) => c.url === "/api/emails/render").at(-1);
    expect(last.body.visitor).toEqual({ email: "ann@example.com", fields: { first_name: "Ann" }, tags: [] });
  });

  it("says so while the server cannot render emails yet", async () => {
    routes["GET /api/visitors"] = () => answer(200, [ADA]);
    const onChange = vi.fn();
    render(<TryOut document={DOCUMENT} flowKey="onboarding" csrf="t" onChange={onChange} />);
    fireEvent.click(await screen.findByRole("button", { name: "ada@example.com" }));
    await waitFor(() => expect(onChange.mock.calls.at(-1)[0].rendered.welcome).toEqual({ subject: null, problems: [{ loc: "", msg: "rendering is not available on this server" }] }));
  });

  it("simulates the draft with scripted events, and shows the timeline and the path", async () => {
    routes["GET /api/visitors"] = () => answer(200, [ADA]);
    renderRoute();
    const timeline = [
      { at: "2026-12-01T00:00:00+00:00", step: null, kind: "entered", data: {} },
      { at: "2026-12-01T00:00:00+00:00", step: "welcome", kind: "step", data: { kind: "email" } },
      { at: "2026-12-01T00:00:00+00:00", step: "welcome", kind: "email_sent", data: { subject: "Welcome, Ada!" } },
      { at: "2026-12-01T00:00:00+00:00", step: "settle", kind: "step", data: { kind: "wait" } },
      { at: "2026-12-01T00:00:00+00:00", step: "settle", kind: "waiting", data: { until: "2026-12-03T00:00:00+00:00" } },
      { at: "2026-12-03T00:00:00+00:00", step: "settle", kind: "wait_ended", data: {} },
      { at: "2026-12-03T00:00:00+00:00", step: null, kind: "completed", data: {} },
    ];
    routes["POST /api/flows/onboarding/simulate"] = () => answer(200, { visitor: ADA, sessions: [{ status: "completed", step: "settle", started_at: "2026-12-01T00:00:00+00:00", timeline }] });
    const onChange = vi.fn();
    const view = render(<TryOut document={DOCUMENT} flowKey="onboarding" csrf="t" onChange={onChange} />);
    fireEvent.click(await screen.findByRole("button", { name: "ada@example.com" }));
    expect(screen.getByLabelText("Event 1: type").value).toBe("$signup");
    fireEvent.click(screen.getByText("Add an event"));
    fireEvent.input(screen.getByLabelText("Event 2: type"), { target: { value: "completed_setup" } });
    fireEvent.input(screen.getByLabelText("Event 2: after"), { target: { value: "2 days" } });
    expect(screen.getByRole("alert").textContent).toContain("use 2d");
    expect(screen.getByRole("button", { name: "Simulate" }).disabled).toBe(true);
    fireEvent.input(screen.getByLabelText("Event 2: after"), { target: { value: "2d" } });
    fireEvent.click(screen.getByText("Add event 2: detail"));
    fireEvent.input(screen.getByLabelText("Event 2: detail 1"), { target: { value: "plan" } });
    fireEvent.input(screen.getByLabelText("Event 2: value 1"), { target: { value: "pro" } });
    fireEvent.click(screen.getByRole("button", { name: "Simulate" }));
    const table = await screen.findByRole("region", { name: "Predicted timeline" });
    const simulated = calls.find((c) => c.url === "/api/flows/onboarding/simulate");
    expect(simulated.body).toEqual({
      visitor: { email: "ada@example.com", fields: { first_name: "Ada" }, tags: ["vip"] },
      events: [
        { at: "+0s", type: "$signup" },
        { at: "+2d", type: "completed_setup", details: { plan: "pro" } },
      ],
      definition: DOCUMENT,
    });
    expect(table.textContent).toContain("Gets the email “Welcome, Ada!”.");
    expect(table.textContent).toContain("+2dsettleThe wait ends.");
    await waitFor(() => expect(onChange.mock.calls.at(-1)[0].path).toEqual(["welcome", "settle"]));
    expect(screen.queryByText(/The draft changed/)).toBeNull();
    view.rerender(<TryOut document={{ ...DOCUMENT, steps: DOCUMENT.steps.slice(1) }} flowKey="onboarding" csrf="t" onChange={onChange} />);
    expect(screen.getByText(/The draft changed since this simulation/)).toBeTruthy();
  });

  it("shows the server's problems when the simulation is refused", async () => {
    routes["GET /api/visitors"] = () => answer(200, [ADA]);
    routes["POST /api/flows/onboarding/simulate"] = () => answer(422, { detail: [{ loc: "steps[1].wait", msg: "invalid duration '2 days' (use 2d)" }] });
    render(<TryOut document={DOCUMENT} flowKey="onboarding" csrf="t" />);
    fireEvent.click(await screen.findByRole("button", { name: "ada@example.com" }));
    fireEvent.click(screen.getByRole("button", { name: "Simulate" }));
    expect((await screen.findByText(/The simulation failed/)).textContent).toBe("The simulation failed: steps[1].wait: invalid duration '2 days' (use 2d)");
  });
});

describe("the email panel for a try-out visitor", () => {
  const context = { flows: [], templates: [], problems: [], csrf: "t", flowKey: "onboarding", visitor: { email: "ada@example.com", fields: {}, tags: [], real: true } };
  const step = DOCUMENT.steps[0];

  it("shows the email rendered: HTML in a sandboxed frame, and the text part", async () => {
    routes["POST /api/emails/render"] = () => answer(200, { subject: "Welcome, Ada!", html: "<p>Hi Ada</p><script>alert(1)</script>", text: "Hi Ada", problems: [] });
    render(<panels.email step={step} onChange={() => {}} context={context} />);
    expect((await screen.findByTestId("preview-subject")).textContent).toBe("Welcome, Ada!");
    const frame = screen.getByTitle("The email's HTML, rendered");
    expect(frame.getAttribute("sandbox")).toBe("");
    expect(frame.getAttribute("srcdoc")).toBe("<p>Hi Ada</p><script>alert(1)</script>");
    expect(screen.getByText("Hi Ada", { selector: "pre" })).toBeTruthy();
  });

  it("sends a test to an address the person types", async () => {
    routes["POST /api/emails/render"] = () => answer(200, { subject: "S", html: "<p>H</p>", text: "H", problems: [] });
    routes["POST /api/emails/test"] = () => answer(200, { delivered_to: "outbox", message_id: "<1@x>" });
    render(<panels.email step={step} onChange={() => {}} context={context} />);
    fireEvent.input(screen.getByLabelText("Send a test to"), { target: { value: "me@example.com" } });
    fireEvent.click(screen.getByRole("button", { name: "Send test" }));
    expect((await screen.findByRole("status")).textContent).toBe("Sent to me@example.com into the outbox, marked as a test.");
    expect(calls.find((c) => c.url === "/api/emails/test").body).toEqual({ to: "me@example.com", visitor_email: "ada@example.com", email: step.email, flow: "onboarding" });
  });

  it("tolerates a server without the preview", async () => {
    render(<panels.email step={step} onChange={() => {}} context={context} />);
    expect(await screen.findByText("The preview is not available on this server.")).toBeTruthy();
  });
});

describe("the simulation's first event", () => {
  it("makes the change a trigger on a data change names", () => {
    expect(firstTriggerEvent({ trigger: { event: ["signed_up", "$import"] } })).toMatchObject({ type: "signed_up", details: {}, fields: {} });
    expect(firstTriggerEvent({ trigger: { tag_added: "vip" } })).toMatchObject({ type: "$tag", details: { tag: "vip" } });
    expect(firstTriggerEvent({ trigger: { field_changed: { field: "plan", to: 5 } } })).toMatchObject({ type: "$update_fields", fields: { plan: 5 } });
    expect(firstTriggerEvent({ trigger: { field_changed: "plan" } }).fields).toEqual({ plan: "new value" });
    const now = new Date("2026-03-10T12:00:00Z");
    expect(firstTriggerEvent({ trigger: { date: { field: "birthday", every: "year" } } }, now)).toMatchObject({ type: "$update_fields", fields: { birthday: "2026-03-12" } });
    expect(firstTriggerEvent({ trigger: { date: { field: "renews_on", offset: "-7d" } } }, now).fields).toEqual({ renews_on: "2026-03-19" });
  });
});
