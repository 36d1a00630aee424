// The flow's settings (SPEC §2.1), edited from the trigger box: key, name, description,
// the events that start a session and their condition, the entry rule, cooldown, goals,
// time zone and what waits do on resume. Gets the whole document as `step`, and
// `onChange(newDocument)`.
import { ConditionField } from "../conditions.jsx";
import { durationProblem, slugProblem } from "../checks.js";
import { ListField, orUndefined, SelectField, StepProblems, TextField, withKey } from "./common.jsx";

const ENTRY = [
  ["one_at_a_time", "One at a time"],
  ["once", "Once"],
  ["every_time", "Every time"],
];
const ENTRY_HINTS = {
  one_at_a_time: "A matching event starts a session only if the visitor has no unfinished session here.",
  once: "Only if the visitor never had a session here.",
  every_time: "Every matching event starts a session.",
};
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
  const events = Array.isArray(trigger.event) ? trigger.event : trigger.event ? [trigger.event] : [];
  const goals = Array.isArray(doc.exit) ? doc.exit : [];
  const setGoals = (next) => set("exit", next.length ? next : undefined);
  const saved = context?.flowKey && context.flowKey !== "_new";

  return (
    <form class="panel" data-kind="trigger" onSubmit={(e) => e.preventDefault()}>
      <h2 class="panel-title">Flow settings</h2>
      <TextField id="trigger-key" label="Key" value={doc.key} readOnly={saved} onInput={(text) => set("key", text)} check={(text) => slugProblem(text, "key")} server={at("key")} hint={saved ? "A saved flow keeps its key." : "Its stable name in URLs and the API, e.g. onboarding"} spellcheck={false} />
      <TextField id="trigger-name" label="Name" value={doc.name} onInput={(text) => set("name", orUndefined(text))} server={at("name")} />
      <TextField id="trigger-description" label="Description" multiline rows={2} value={doc.description} onInput={(text) => set("description", orUndefined(text))} server={at("description")} />
      <ListField
        id="trigger-events"
        label="Started by events of type"
        value={events}
        // One type is written as a string, as people write it; several as a list.
        onChange={(list) => setTrigger("event", !list ? "" : list.length === 1 && !Array.isArray(trigger.event) ? list[0] : list)}
        check={(list) => (list.length ? null : "at least one event type, e.g. $signup")}
        server={at("trigger.event").concat(problems.filter((p) => /^trigger\.event\[/.test(p.loc ?? "")), at("trigger"))}
      />
      <ConditionField id="trigger-condition" label="Only when (optional)" value={trigger.if} onChange={(text) => setTrigger("if", text)} server={at("trigger.if")} eventNote="Here event means the event that would start the session." />
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
