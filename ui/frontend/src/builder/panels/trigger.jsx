// The flow's settings (SPEC §2.1), edited from the trigger box: key, name, description,
// what starts a session (events, a tag added, a field changed, a segment entered or left, a date, a
// webhook: §7) and its condition,
// the entry rule, cooldown, goals, time zone and what waits do on resume. Gets the whole document as `step`, and
// `onChange(newDocument)`.
import { ConditionField } from "../conditions.jsx";
import { durationProblem, slugProblem, timeOfDayProblem } from "../checks.js";
import { segmentTrigger } from "../document.js";
import { CheckField, ListField, orUndefined, SelectField, StepProblems, TextField, withKey } from "./common.jsx";

const ENTRY = [
  ["one_at_a_time", "One at a time"],
  ["once", "Once"],
  ["every_time", "Every time"],
];
const ENTRY_HINTS = {
  one_at_a_time: "What starts the flow starts a session only if the visitor has no unfinished session here.",
  once: "Only if the visitor never had a session here.",
  every_time: "Every time it happens, a session starts.",
};
// What starts a session (SPEC §7 Triggers): one of these keys, with an optional `if`.
const STARTED_BY = [
  ["event", "An event"],
  ["tag_added", "A tag is added"],
  ["field_changed", "A field changes"],
  ["segment", "A visitor enters or leaves a segment"],
  ["date", "A date arrives"],
  ["webhook", "A webhook arrives"],
];
const STARTED_BY_HINTS = {
  event: "Events from your app, the API or a flow's track step.",
  tag_added: "By any source but an import: a $tag event, Bento's commands, a person on the profile, a flow's tag step.",
  field_changed: "By any source but an import: an event's fields, Bento's commands, a person on the profile, a flow's field step.",
  segment: "When their data or events move them in or out (an import only if it asks to start flows; saving the segment's rules starts nothing).",
  date: "On the day a visitor's date field names (a birthday, a renewal), in their time zone: once, or every year. When the field changes, so does the day.",
  webhook: "A POST to this flow's own address, /api/hooks/KEY: once saved, the flow's page shows it with its secret to give the sender.",
};
const EVENT_NOTES = {
  event: "Here event means the event that would start the session.",
  tag_added: "Here event means the change: event.details.tag.",
  field_changed: "Here event means the change: event.details.field, .from and .to.",
  segment: "Here event means the $segment_entered (or $segment_left) event: event.details.segment.",
  date: "Here event means the $date event: event.details.field, .date (the day) and .occurrence.",
  webhook: "Here event means the $webhook event: event.details holds what the trigger maps (or body).",
};
const FIRST_VALUE = { event: "", tag_added: "", field_changed: "", segment: "", date: { field: "", at: "09:00" }, webhook: { email: "{{ body.email }}" } };

/** The kind of trigger `trigger` names; "event" when it names none yet. */
export function triggerKind(trigger) {
  return STARTED_BY.map(([kind]) => kind).find((kind) => kind in trigger) ?? "event";
}

/** A `to` typed as text, read as YAML would read it: numbers, true, false and null
 * are themselves, anything else text. */
export function scalar(text) {
  return /^(-?(0|[1-9]\d*)(\.\d+)?|true|false|null)$/.test(text.trim()) ? JSON.parse(text.trim()) : text;
}

const SEGMENT_ON = [
  ["entered", "Enters it"],
  ["left", "Leaves it"],
];

const ON_RESUME = [
  ["catch_up", "Catch up"],
  ["extend", "Extend"],
];
const ON_RESUME_HINTS = {
  catch_up: "A wait whose time passed while paused ends at once.",
  extend: "The time spent paused is added to the wait.",
};

/** The IANA zones the browser knows, for the time zone suggestions. */
function zones() {
  try {
    return Intl.supportedValuesOf("timeZone");
  } catch {
    return [];
  }
}

export default function Trigger({ step: doc, onChange, context }) {
  const problems = context?.problems ?? [];
  const at = (loc) => problems.filter((p) => p.loc === loc);
  const set = (key, v) => onChange(withKey(doc, key, v));
  const trigger = doc.trigger && typeof doc.trigger === "object" ? doc.trigger : {};
  const setTrigger = (key, v) => set("trigger", withKey(trigger, key, v));
  const kind = triggerKind(trigger);
  // Another kind replaces the one named, keeping the condition.
  const setKind = (next) =>
    set("trigger", { [next]: FIRST_VALUE[next], ...(trigger.if !== undefined ? { if: trigger.if } : {}) });
  const events = Array.isArray(trigger.event) ? trigger.event : trigger.event ? [trigger.event] : [];
  const changed = trigger.field_changed;
  const field = typeof changed === "string" ? changed : changed?.field ?? "";
  const hasTo = changed && typeof changed === "object" && "to" in changed;
  // `field_changed: plan` as people write it; a mapping only with a value to change to.
  const setFieldChanged = (name, to) => setTrigger("field_changed", to === undefined ? name : { field: name, to });
  const segment = segmentTrigger(trigger.segment);
  // `segment: vip` as people write it; a mapping only for leaving.
  const setSegment = (key, on) => setTrigger("segment", on === "left" ? { key, on } : key);
  const date = trigger.date && typeof trigger.date === "object" ? trigger.date : {};
  const setDate = (key, v) => setTrigger("date", withKey(date, key, v));
  const goals = Array.isArray(doc.exit) ? doc.exit : [];
  const setGoals = (next) => set("exit", next.length ? next : undefined);
  const saved = context?.flowKey && context.flowKey !== "_new";

  return (
    <form class="panel" data-kind="trigger" onSubmit={(e) => e.preventDefault()}>
      <h2 class="panel-title">Flow settings</h2>
      <TextField id="trigger-key" label="Key" value={doc.key} readOnly={saved} onInput={(text) => set("key", text)} check={(text) => slugProblem(text, "key")} server={at("key")} hint={saved ? "A saved flow keeps its key." : "Its stable name in URLs and the API, e.g. onboarding"} spellcheck={false} />
      <TextField id="trigger-name" label="Name" value={doc.name} onInput={(text) => set("name", orUndefined(text))} server={at("name")} />
      <TextField id="trigger-description" label="Description" multiline rows={2} value={doc.description} onInput={(text) => set("description", orUndefined(text))} server={at("description")} />
      <SelectField id="trigger-kind" label="Started when" value={kind} options={STARTED_BY} hint={STARTED_BY_HINTS[kind]} onChange={setKind} server={at("trigger")} />
      {kind === "tag_added" && (
        <TextField id="trigger-tag" label="Tag" value={trigger.tag_added} onInput={(text) => setTrigger("tag_added", text)} check={(text) => (text.trim() ? null : "a tag is required, e.g. vip")} server={at("trigger.tag_added")} spellcheck={false} />
      )}
      {kind === "field_changed" && (
        <>
          <TextField id="trigger-field" label="Field" value={field} onInput={(text) => setFieldChanged(text, hasTo ? changed.to : undefined)} check={(text) => (text.trim() ? null : "a field is required, e.g. plan")} server={at("trigger.field_changed").concat(at("trigger.field_changed.field"))} spellcheck={false} />
          <TextField id="trigger-to" label="Changed to (optional)" value={hasTo ? (typeof changed.to === "string" ? changed.to : JSON.stringify(changed.to)) : ""} onInput={(text) => setFieldChanged(field, text === "" ? undefined : scalar(text))} server={at("trigger.field_changed.to")} hint="Any new value when empty; 5, true and null are read as in YAML." spellcheck={false} />
        </>
      )}
      {kind === "segment" && (
        <>
          <TextField id="trigger-segment" label="Segment key" value={segment.key} onInput={(text) => setSegment(text, segment.on)} check={(text) => (text.trim() ? null : "a segment is required, e.g. repeat_buyers")} server={at("trigger.segment").concat(at("trigger.segment.key"))} hint="Its key, as on the Segments page." spellcheck={false} />
          <SelectField id="trigger-segment-on" label="When the visitor" value={segment.on} options={SEGMENT_ON} onChange={(on) => setSegment(segment.key, on)} server={at("trigger.segment.on")} />
        </>
      )}
      {kind === "date" && (
        <>
          <TextField id="trigger-date-field" label="Date field" value={date.field} onInput={(text) => setDate("field", text)} check={(text) => (text.trim() ? null : "a field is required, e.g. birthday")} server={at("trigger.date").concat(at("trigger.date.field"))} hint="A field holding a date, 2027-03-14 (or a time: its date as written)." spellcheck={false} />
          <TextField id="trigger-date-offset" label="Offset (optional)" value={date.offset} onInput={(text) => setDate("offset", orUndefined(text))} check={(text) => durationProblem(text, { signed: true, required: false })} server={at("trigger.date.offset")} hint="Before the date with a minus: -7d is a week before; 1d the day after." spellcheck={false} />
          <TextField id="trigger-date-at" label="At (the visitor's time zone)" type="time" value={date.at} onInput={(text) => setDate("at", orUndefined(text))} check={(text) => (text ? timeOfDayProblem(text) : null)} server={at("trigger.date.at")} hint="09:00 when empty." />
          <CheckField id="trigger-date-every" label="Every year, on its month and day" checked={date.every === "year"} onChange={(on) => setDate("every", on ? "year" : undefined)} hint={date.every === "year" ? "29 February comes on 28 February in other years." : "Once, on the date itself; a date already past starts nothing."} />
          {at("trigger.date.every").map((p, i) => (
            <p class="panel-problem" role="alert" key={i}>
              {p.msg}
            </p>
          ))}
        </>
      )}
      {kind === "webhook" && (
        <>
          <TextField id="trigger-hook-email" label="Visitor's email, from the body" value={trigger.webhook?.email} onInput={(text) => setTrigger("webhook", withKey(trigger.webhook, "email", text))} check={(text) => (text.trim() ? null : "required, e.g. {{ body.email }}")} server={at("trigger.webhook").concat(at("trigger.webhook.email"))} hint="Where the sender's JSON puts it, e.g. {{ body.customer.email }}. What else to keep of it: details, in the YAML tab." spellcheck={false} />
          <TextField id="trigger-hook-key" label="Repeat key (optional)" value={trigger.webhook?.idempotency_key} onInput={(text) => setTrigger("webhook", withKey(trigger.webhook, "idempotency_key", orUndefined(text)))} server={at("trigger.webhook.idempotency_key")} hint="What a sender's retry repeats, e.g. {{ body.id }}: a second call with it starts nothing. Signed senders' retries are caught without it." spellcheck={false} />
        </>
      )}
      {kind === "event" && <ListField
        id="trigger-events"
        label="Started by events of type"
        value={events}
        // One type is written as a string, as people write it; several as a list.
        onChange={(list) => setTrigger("event", !list ? "" : list.length === 1 && !Array.isArray(trigger.event) ? list[0] : list)}
        check={(list) => (list.length ? null : "at least one event type, e.g. $signup")}
        server={at("trigger.event").concat(problems.filter((p) => /^trigger\.event\[/.test(p.loc ?? "")))}
      />}
      <ConditionField id="trigger-condition" label="Only when (optional)" value={trigger.if} onChange={(text) => setTrigger("if", text)} server={at("trigger.if")} eventNote={EVENT_NOTES[kind]} />
      <SelectField id="trigger-entry" label="Entry" value={doc.entry ?? "one_at_a_time"} options={ENTRY} hint={ENTRY_HINTS[doc.entry ?? "one_at_a_time"]} onChange={(v) => set("entry", v === "one_at_a_time" && !("entry" in doc) ? undefined : v)} server={at("entry")} />
      <TextField id="trigger-cooldown" label="Cooldown (optional)" value={doc.cooldown} onInput={(text) => set("cooldown", orUndefined(text))} check={(text) => durationProblem(text, { required: false })} server={at("cooldown")} hint="No new session within this time after the last one started, e.g. 30d" spellcheck={false} />
      <fieldset class="panel-goals">
        <legend>Goals: a matching event ends the session (a conversion)</legend>
        {goals.map((goal, i) => (
          <div class="panel-goal" role="group" aria-label={`Goal ${i + 1}`} key={i}>
            <TextField
              id={`trigger-goal-${i}-event`}
              label={`Goal ${i + 1}: event type`}
              value={goal?.event}
              onInput={(text) => setGoals(goals.map((g, j) => (j === i ? withKey(g, "event", text) : g)))}
              check={(text) => (text.trim() ? null : "an event type is required")}
              server={at(`exit[${i}].event`).concat(at(`exit[${i}]`))}
              spellcheck={false}
            />
            <ConditionField id={`trigger-goal-${i}-condition`} label={`Goal ${i + 1}: only when (optional)`} value={goal?.if} onChange={(text) => setGoals(goals.map((g, j) => (j === i ? withKey(g, "if", text) : g)))} server={at(`exit[${i}].if`)} />
            <button type="button" class="panel-remove" aria-label={`Remove goal ${i + 1}`} onClick={() => setGoals(goals.filter((_, j) => j !== i))}>
              Remove goal
            </button>
          </div>
        ))}
        <button type="button" onClick={() => setGoals([...goals, { event: "" }])}>
          Add a goal
        </button>
      </fieldset>
      <TextField id="trigger-timezone" label="Time zone (optional)" value={doc.timezone} onInput={(text) => set("timezone", orUndefined(text))} server={at("timezone")} list="trigger-zones" hint="For time-of-day waits when the visitor has no valid fields.timezone, e.g. Europe/Berlin" spellcheck={false} />
      <datalist id="trigger-zones">
        {zones().map((zone) => (
          <option key={zone} value={zone} />
        ))}
      </datalist>
      <SelectField id="trigger-on-resume" label="When a paused session resumes" value={doc.on_resume ?? "catch_up"} options={ON_RESUME} hint={ON_RESUME_HINTS[doc.on_resume ?? "catch_up"]} onChange={(v) => set("on_resume", v === "catch_up" && !("on_resume" in doc) ? undefined : v)} server={at("on_resume")} />
      <StepProblems problems={problems.filter((p) => !(p.loc ?? "").startsWith("steps"))} />
    </form>
  );
}
