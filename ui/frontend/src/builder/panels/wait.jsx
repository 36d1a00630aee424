// The wait step (SPEC §2.2, §2.3): for a time (`wait: 2d`), until a time of day
// (optionally on some weekdays), until an absolute time, or until a date in a field
// plus an offset.
import { durationProblem, instantProblem, timeOfDayProblem } from "../checks.js";
import { orUndefined, Panel, problemsAt, SelectField, TextField, withAction, withKey } from "./common.jsx";

const KIND = "wait";
export const WEEKDAYS = [
  ["mon", "Monday"],
  ["tue", "Tuesday"],
  ["wed", "Wednesday"],
  ["thu", "Thursday"],
  ["fri", "Friday"],
  ["sat", "Saturday"],
  ["sun", "Sunday"],
];
const MODES = [
  ["for", "For a time"],
  ["at", "Until a time of day"],
  ["until", "Until a date and time"],
  ["until_field", "Until a date in a field"],
];

/** The form a wait's value is written in. */
export function waitMode(value) {
  if (value && typeof value === "object") return MODES.find(([mode]) => mode in value)?.[0] ?? "for";
  return "for";
}

const FRESH = { for: "1d", at: { at: "09:00" }, until: { until: "" }, until_field: { until_field: "", offset: "0s" } };

export default function Wait({ step, onChange, context }) {
  const value = step.wait;
  const mode = waitMode(value);
  const map = value && typeof value === "object" ? value : {};
  const put = (next) => onChange(withAction(step, KIND, next));
  const set = (key, v) => put(withKey(map, key, v));
  const server = (suffix) => problemsAt(context?.problems, KIND, suffix);
  const days = Array.isArray(map.on) ? map.on.map((d) => String(d).toLowerCase()) : [];

  return (
    <Panel title="Wait" kind={KIND} step={step} onChange={onChange} context={context}>
      <SelectField id="panel-wait-mode" label="Wait" value={mode} options={MODES} onChange={(m) => m !== mode && put(FRESH[m])} />
      {mode === "for" && (
        <TextField
          id="panel-wait-for"
          label="How long"
          value={typeof value === "object" && value ? map.for : value == null ? "" : String(value)}
          // The short form `wait: 2d` stays short; a mapping `{for: 2d}` stays a mapping.
          onInput={(text) => (value && typeof value === "object" ? set("for", text) : put(text))}
          check={(text) => durationProblem(text)}
          server={typeof value === "object" ? server(".for") : server("")}
          hint="e.g. 30m, 2h, 3d, 1w, 1h30m"
          spellcheck={false}
        />
      )}
      {mode === "at" && (
        <>
          <TextField id="panel-wait-at" label="Time of day (the visitor's time zone)" type="time" value={map.at} onInput={(text) => set("at", text)} check={timeOfDayProblem} server={server(".at")} />
          <fieldset class="panel-days">
            <legend>Only on (none: any day)</legend>
            {WEEKDAYS.map(([day, name]) => (
              <span class="panel-day" key={day}>
                <input
                  type="checkbox"
                  id={`panel-wait-on-${day}`}
                  checked={days.includes(day)}
                  onChange={(e) => {
                    const on = e.currentTarget.checked ? [...days, day] : days.filter((d) => d !== day);
                    const ordered = WEEKDAYS.map(([d]) => d).filter((d) => on.includes(d));
                    set("on", ordered.length ? ordered : undefined);
                  }}
                />
                <label for={`panel-wait-on-${day}`}>{name}</label>
              </span>
            ))}
          </fieldset>
          {server(".on").map((p, i) => (
            <p class="panel-problem" role="alert" key={i}>
              {p.msg}
            </p>
          ))}
        </>
      )}
      {mode === "until" && (
        <TextField id="panel-wait-until" label="Until (date, time and offset)" value={map.until} onInput={(text) => set("until", text)} check={instantProblem} server={server(".until")} hint="ISO 8601 with an offset, e.g. 2026-12-24T09:00:00Z or 2026-12-24T09:00:00+01:00" spellcheck={false} />
      )}
      {mode === "until_field" && (
        <>
          <TextField id="panel-wait-field" label="Field holding the date" value={map.until_field} onInput={(text) => set("until_field", text)} check={(text) => (text.trim() ? null : "name the field, e.g. trial_ends_at")} server={server(".until_field")} spellcheck={false} />
          <TextField
            id="panel-wait-offset"
            label="Offset (before: a minus sign)"
            value={map.offset}
            onInput={(text) => set("offset", orUndefined(text))}
            check={(text) => durationProblem(text, { signed: true, required: false })}
            server={server(".offset")}
            hint="e.g. -3d for three days before the date, 2h for two hours after"
            spellcheck={false}
          />
        </>
      )}
    </Panel>
  );
}
