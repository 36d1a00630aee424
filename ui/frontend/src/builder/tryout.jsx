// "See it as a visitor": pick a real visitor (GET /api/visitors?q=) or make one up; then
// every email box shows its subject rendered for them (POST /api/emails/render), the
// email panel the whole email and "Send test" (POST /api/emails/test), and "Simulate"
// runs the draft on the virtual clock (POST /api/flows/{key}/simulate, the engine of
// `sluice simulate`) with the events the person scripts: the predicted timeline, and
// the path of step ids the canvas highlights (builder-design.md).
import { useEffect, useRef, useState } from "preact/hooks";
import { addressProblem, durationProblem, durationSeconds, formatDuration } from "./checks.js";
import { KeyValues, ListField, TextField } from "./panels/common.jsx";
import { failure, renderEmail, searchVisitors, sendTest, simulate } from "./tryout-api.js";

/**
 * Every step of a document with the id the engine gives it: its own `id`, else the one
 * derived from its position (`steps.2.then.0`, `steps.4.split.1.steps.0`,
 * `steps.3.webhook.on_failure.0`, as src/sluice/definitions/steps.py derives them).
 */
export function stepsWithIds(document) {
  const found = [];
  const walk = (list, path) => {
    if (!Array.isArray(list)) return;
    list.forEach((step, i) => {
      if (!step || typeof step !== "object") return;
      const here = `${path}.${i}`;
      found.push({ id: typeof step.id === "string" && step.id ? step.id : here, step });
      for (const branch of ["then", "else", "on_timeout"]) walk(step[branch], `${here}.${branch}`);
      if (Array.isArray(step.split)) step.split.forEach((b, j) => walk(b?.steps, `${here}.split.${j}.steps`));
      if (step.webhook && typeof step.webhook === "object") walk(step.webhook.on_failure, `${here}.webhook.on_failure`);
    });
  };
  walk(document?.steps, "steps");
  return found;
}

/** The ids of the steps a simulated session passed, in order, each once. */
export function pathOf(simulation) {
  const ids = [];
  for (const session of simulation?.sessions ?? []) {
    for (const entry of session.timeline ?? []) {
      if (entry.kind === "step" && entry.step && !ids.includes(entry.step)) ids.push(entry.step);
    }
  }
  return ids;
}

const quote = (text) => `“${text}”`;

/** A timeline entry as a sentence about the visitor; null for entries the sentence of
 * another already says (`step`: the row shows the step's id). */
export function sentence(entry) {
  const d = entry.data ?? {};
  switch (entry.kind) {
    case "step":
      return null;
    case "entered":
      return "Enters the flow.";
    case "email_sent":
      return `Gets the email ${quote(d.subject ?? "")}.`;
    case "email_skipped":
      return `The email is skipped${d.reason ? ` (${d.reason})` : ""}.`;
    case "email_failed":
      return `The email fails${d.error ? `: ${d.error}` : ""}.`;
    case "webhook_delivered":
      return "The webhook is called.";
    case "webhook_attempt_failed":
      return "A webhook call fails; it will be tried again.";
    case "webhook_failed":
      return `The webhook fails for good${d.error ? `: ${d.error}` : ""}.`;
    case "tags_changed": {
      const parts = [...(d.added ?? []).map((t) => `+${t}`), ...(d.removed ?? []).map((t) => `−${t}`)];
      return parts.length ? `Tags change: ${parts.join(", ")}.` : "Tags stay as they were.";
    }
    case "fields_changed": {
      const set = Object.entries(d.set ?? {}).map(([k, v]) => `${k} = ${typeof v === "string" ? v : JSON.stringify(v)}`);
      const removed = (d.removed ?? []).map((k) => `${k} removed`);
      return `Fields change: ${[...set, ...removed].join(", ") || "none"}.`;
    }
    case "waiting":
      return d.event ? `Waits for ${d.event}${d.until ? ` until ${d.until}` : ""}.` : `Waits until ${d.until}.`;
    case "wait_ended":
      return "The wait ends.";
    case "event_received":
      return `${d.event?.type ?? "The event"} arrives.`;
    case "wait_timed_out":
      return "The event did not come in time.";
    case "branch":
      return `The condition is ${d.result ? "true" : "false"}${d.error ? ` (${d.error})` : ""}.`;
    case "split":
      return `Drawn into branch ${Number(d.branch) + 1} (weight ${d.weight}).`;
    case "goal":
      return `Reaches a goal: ${d.event?.type ?? ""}.`;
    case "exited":
      return `Leaves the flow${d.reason ? ` (${d.reason})` : ""}.`;
    case "completed":
      return "Completes the flow.";
    case "failed":
      return `The session fails: ${d.error ?? ""}.`;
    default:
      return `${entry.kind.replaceAll("_", " ")}.`;
  }
}

/** `at` as the time since `start`: "+2d", "+0s". */
export function since(at, start) {
  const seconds = Math.round((Date.parse(at) - Date.parse(start)) / 1000);
  return Number.isFinite(seconds) ? `+${formatDuration(Math.max(0, seconds))}` : at;
}

/** Renders the subject of every email step for the visitor, at most a few at a time,
 * each again only when its email changes. */
function useRenderedSubjects({ document, visitor, csrf, flowKey }) {
  const cache = useRef(new Map());
  const [rendered, setRendered] = useState({});
  const emails = visitor ? stepsWithIds(document).filter(({ step }) => step.email && typeof step.email === "object") : [];
  const key = JSON.stringify([visitor, emails.map(({ id, step }) => [id, step.email])]);
  useEffect(() => {
    if (!visitor) {
      setRendered({});
      return undefined;
    }
    let current = true;
    const timer = setTimeout(async () => {
      const visitorKey = JSON.stringify(visitor);
      const result = {};
      const queue = [...emails];
      const work = async () => {
        for (let item = queue.shift(); item; item = queue.shift()) {
          const cacheKey = `${visitorKey}\n${JSON.stringify(item.step.email)}`;
          let answer = cache.current.get(cacheKey);
          if (!answer) {
            answer = await renderEmail({ csrf, visitor, email: item.step.email, flowKey });
            if (answer.ok) cache.current.set(cacheKey, answer);
          }
          result[item.id] = answer.ok
            ? { subject: answer.data.subject, problems: answer.data.problems ?? [] }
            : { subject: null, problems: [{ loc: "", msg: answer.status === 404 ? "rendering is not available on this server" : failure(answer) }] };
        }
      };
      await Promise.all([work(), work(), work(), work()]);
      if (current) setRendered(result);
    }, 300);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [key]);
  return rendered;
}

/**
 * The try-out pane. `document`: the draft; `flowKey`: the flow's key (for a new flow,
 * the document's); `onChange({visitor, rendered, path, timeline})` whenever one changes.
 */
export function TryOut({ document, flowKey, csrf, onChange }) {
  const [visitor, setVisitor] = useState(null);
  const [simulation, setSimulation] = useState(null);
  const rendered = useRenderedSubjects({ document, visitor, csrf, flowKey });
  const path = pathOf(simulation?.data);
  const timeline = simulation?.data?.sessions?.[0]?.timeline ?? [];
  const report = JSON.stringify([visitor, rendered, path]);
  useEffect(() => {
    onChange?.({ visitor, rendered, path, timeline });
  }, [report]);

  return (
    <section class="tryout" aria-labelledby="tryout-title">
      <h2 id="tryout-title">See it as a visitor</h2>
      <VisitorPicker visitor={visitor} onChange={(v) => { setVisitor(v); setSimulation(null); }} csrf={csrf} />
      {visitor && <Simulation document={document} flowKey={flowKey} csrf={csrf} visitor={visitor} simulation={simulation} onSimulated={setSimulation} />}
    </section>
  );
}

/** A real visitor found by search, or one made up (email, fields, tags). */
export function VisitorPicker({ visitor, onChange, csrf }) {
  const [mode, setMode] = useState("real");
  const [query, setQuery] = useState("");
  const [found, setFound] = useState(null);
  const [made, setMade] = useState({ email: "", fields: {}, tags: [] });
  useEffect(() => {
    if (mode !== "real" || visitor) return undefined;
    let current = true;
    const timer = setTimeout(async () => {
      const answer = await searchVisitors({ csrf, q: query, limit: 10 });
      if (current) setFound(answer);
    }, 250);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [query, mode, visitor, csrf]);
  const chooseMade = (next) => {
    setMade(next);
    onChange(next.email && !addressProblem(next.email) ? { ...next, real: false } : null);
  };

  if (visitor && mode === "real") {
    return (
      <div class="tryout-visitor">
        <p>
          Seeing it as <strong data-testid="tryout-visitor">{visitor.email}</strong>
          {visitor.tags?.length ? ` (tags: ${visitor.tags.join(", ")})` : ""}
        </p>
        <button type="button" onClick={() => onChange(null)}>
          Choose another visitor
        </button>
      </div>
    );
  }
  return (
    <div class="tryout-picker">
      <fieldset class="panel-choice">
        <legend>Visitor</legend>
        <input type="radio" id="tryout-mode-real" name="tryout-mode" checked={mode === "real"} onChange={() => { setMode("real"); onChange(null); }} />
        <label for="tryout-mode-real">A real visitor</label>
        <input type="radio" id="tryout-mode-made" name="tryout-mode" checked={mode === "made"} onChange={() => { setMode("made"); chooseMade(made); }} />
        <label for="tryout-mode-made">Make one up</label>
      </fieldset>
      {mode === "real" ? (
        <>
          <TextField id="tryout-search" label="Find a visitor" type="search" value={query} onInput={setQuery} hint="Part of the email, or field:value" autocomplete="off" />
          {found && !found.ok && (
            <p class="panel-problem" role="alert">
              The search failed: {failure(found)}
            </p>
          )}
          {found?.ok && (
            <ul class="tryout-found" aria-label="Visitors found">
              {found.data.length === 0 && <li>No visitor found.</li>}
              {found.data.map((v) => (
                <li key={v.email}>
                  <button type="button" onClick={() => onChange({ email: v.email, fields: v.fields, tags: v.tags, real: true })}>
                    {v.email}
                  </button>
                  {v.tags.length ? <span class="tryout-tags"> {v.tags.join(", ")}</span> : null}
                </li>
              ))}
            </ul>
          )}
        </>
      ) : (
        <>
          <TextField id="tryout-email" label="Email" type="email" value={made.email} onInput={(email) => chooseMade({ ...made, email })} check={(text) => (text ? addressProblem(text) : "an email is needed")} autocomplete="off" />
          <KeyValues id="tryout-fields" legend="Fields" keyLabel="Field" value={made.fields} onChange={(fields) => chooseMade({ ...made, fields: fields ?? {} })} />
          <ListField id="tryout-tags" label="Tags" value={made.tags} onChange={(tags) => chooseMade({ ...made, tags: tags ?? [] })} />
        </>
      )}
    </div>
  );
}

/** What a simulation's first event is by default: the trigger's first event type, or
 * for a trigger on a data change an event that makes it (a `$tag` adding the tag, an
 * `$update_fields` setting the field); for a date trigger, one setting the field to a
 * date still to come once the offset is counted (`now`: the simulation's start). */
export function firstTriggerEvent(document, now = new Date()) {
  const trigger = document?.trigger ?? {};
  const first = { after: "0s", details: {}, fields: {} };
  if (trigger.date && typeof trigger.date === "object") {
    const field = trigger.date.field ?? "";
    const before = Math.max(0, -(durationSeconds(String(trigger.date.offset ?? ""), { signed: true }) ?? 0));
    // Two days ahead, and as far again as the offset goes before it: still to come in any zone.
    const day = new Date(now.getTime() + (2 * 86400 + Math.ceil(before / 86400) * 86400) * 1000);
    return { ...first, type: "$update_fields", fields: field ? { [field]: day.toISOString().slice(0, 10) } : {} };
  }
  if (typeof trigger.tag_added === "string") return { ...first, type: "$tag", details: { tag: trigger.tag_added } };
  const changed = trigger.field_changed;
  if (changed !== undefined) {
    const field = typeof changed === "string" ? changed : changed?.field ?? "";
    const to = changed && typeof changed === "object" && "to" in changed ? changed.to : "new value";
    return { ...first, type: "$update_fields", fields: field ? { [field]: to } : {} };
  }
  const event = trigger.event;
  return { ...first, type: (Array.isArray(event) ? event[0] : event) ?? "" };
}

function Simulation({ document, flowKey, csrf, visitor, simulation, onSimulated }) {
  const [events, setEvents] = useState(() => [firstTriggerEvent(document)]);
  const [busy, setBusy] = useState(false);
  const problems = events.map((e) => durationProblem(e.after, { zero: true }) || (e.type.trim() ? null : "an event type is needed"));
  const key = document?.key || flowKey;
  const run = async () => {
    setBusy(true);
    const script = events.map((e) => ({
      at: `+${e.after}`,
      type: e.type.trim(),
      ...(Object.keys(e.details).length ? { details: e.details } : {}),
      ...(Object.keys(e.fields).length ? { fields: e.fields } : {}),
    }));
    const answer = await simulate({ csrf, flowKey: key, definition: document, visitor, events: script });
    onSimulated({ ...answer, of: JSON.stringify(document) });
    setBusy(false);
  };
  const setEvent = (i, change) => setEvents(events.map((e, j) => (j === i ? { ...e, ...change } : e)));
  const sessions = simulation?.ok ? simulation.data.sessions : null;
  return (
    <div class="tryout-simulation">
      <h3>Simulate</h3>
      <p class="panel-hint">Events that happen to {visitor.email}, counted from the start. Nothing is sent or stored.</p>
      <ol class="tryout-events">
        {events.map((event, i) => (
          <li key={i}>
            <div role="group" aria-label={`Event ${i + 1}`} class="tryout-event">
            <TextField id={`tryout-event-${i}-type`} label={`Event ${i + 1}: type`} value={event.type} onInput={(type) => setEvent(i, { type })} check={(t) => (t.trim() ? null : "an event type is needed")} spellcheck={false} />
            <TextField id={`tryout-event-${i}-after`} label={`Event ${i + 1}: after`} value={event.after} onInput={(after) => setEvent(i, { after })} check={(t) => durationProblem(t, { zero: true })} hint="from the start, e.g. 0s, 2d, 3d12h" spellcheck={false} />
            <KeyValues id={`tryout-event-${i}-details`} legend={`Event ${i + 1}: details`} prefix={`Event ${i + 1}: `} keyLabel="Detail" value={event.details} onChange={(details) => setEvent(i, { details: details ?? {} })} />
            <KeyValues id={`tryout-event-${i}-fields`} legend={`Event ${i + 1}: fields it sets`} prefix={`Event ${i + 1} fields: `} keyLabel="Field" value={event.fields} onChange={(fields) => setEvent(i, { fields: fields ?? {} })} />
            <button type="button" class="panel-remove" aria-label={`Remove event ${i + 1}`} onClick={() => setEvents(events.filter((_, j) => j !== i))}>
              Remove event
            </button>
            </div>
          </li>
        ))}
      </ol>
      <button type="button" onClick={() => setEvents([...events, { type: "", after: nextOffset(events), details: {}, fields: {} }])}>
        Add an event
      </button>{" "}
      <button type="button" class="primary" disabled={busy || !key || problems.some(Boolean)} onClick={run}>
        {busy ? "Simulating…" : "Simulate"}
      </button>
      {!key && <p class="panel-hint">Give the flow a key first.</p>}
      {simulation && !simulation.ok && (
        <p class="panel-problem" role="alert">
          The simulation failed: {failure(simulation)}
        </p>
      )}
      {simulation && simulation.of !== JSON.stringify(document) && <p class="panel-hint">The draft changed since this simulation: simulate again to see it.</p>}
      {sessions && sessions.length === 0 && <p role="status">{visitor.email} would not enter the flow with these events.</p>}
      {sessions?.map((session, n) => (
        <section class="tryout-timeline" key={n} aria-label={`Predicted timeline${sessions.length > 1 ? ` ${n + 1}` : ""}`}>
          <h4>
            Predicted: {session.status}
            {session.step ? ` at ${session.step}` : ""}
          </h4>
          <table>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Step</th>
                <th scope="col">What happens</th>
              </tr>
            </thead>
            <tbody>
              {session.timeline.map((entry, i) => {
                const text = sentence(entry);
                return text === null ? null : (
                  <tr key={i} data-kind={entry.kind}>
                    <td>{since(entry.at, session.started_at)}</td>
                    <td>{entry.step ? <code>{entry.step}</code> : ""}</td>
                    <td>{text}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </section>
      ))}
    </div>
  );
}

/** A new event's offset: a day after the last one. */
function nextOffset(events) {
  const last = durationSeconds(events.at(-1)?.after ?? "0s");
  return formatDuration((last ?? 0) + 86400);
}

/** "Send test": the email rendered for the visitor, sent to an address typed here. */
export function SendTest({ email, context }) {
  const [to, setTo] = useState("");
  const [state, setState] = useState(null);
  const problem = to ? addressProblem(to) : null;
  const send = async () => {
    setState({ sending: true });
    const answer = await sendTest({ csrf: context.csrf, to, visitor: context.visitor, email, flowKey: context.flowKey });
    setState({ answer });
  };
  const answer = state?.answer;
  return (
    <div class="tryout-send">
      <TextField id="panel-test-to" label="Send a test to" type="email" value={to} onInput={setTo} check={() => problem} autocomplete="email" />
      <button type="button" disabled={!to || Boolean(problem) || state?.sending} onClick={send}>
        {state?.sending ? "Sending…" : "Send test"}
      </button>
      {answer?.ok && (
        <p role="status">
          Sent to {to} {answer.data.delivered_to === "smtp" ? "through SMTP" : "into the outbox, marked as a test"}.
        </p>
      )}
      {answer && !answer.ok && (
        <p class="panel-problem" role="alert">
          {answer.status === 404 ? "Test sends are not available on this server." : `Not sent: ${failure(answer)}`}
        </p>
      )}
    </div>
  );
}
