// The wait_for step (SPEC §2.2): wait until the visitor has an event of a type (and
// matching a condition), at most `timeout`. The `then` and `on_timeout` branches are
// added on the canvas.
import { ConditionField } from "../conditions.jsx";
import { durationProblem } from "../checks.js";
import { Panel, problemsAt, TextField, withAction, withKey } from "./common.jsx";

const KIND = "wait_for";

export default function WaitFor({ step, onChange, context }) {
  const value = step.wait_for && typeof step.wait_for === "object" ? step.wait_for : {};
  const set = (key, v) => onChange(withAction(step, KIND, withKey(value, key, v)));
  const server = (suffix) => problemsAt(context?.problems, KIND, suffix);
  return (
    <Panel title="Wait for an event" kind={KIND} step={step} onChange={onChange} context={context} help="Add steps for when it comes (then) and for when it does not (on timeout) on the canvas.">
      <TextField id="panel-event" label="Event type" value={value.event} onInput={(text) => set("event", text)} check={(text) => (text.trim() ? null : "an event type is required, e.g. completed_setup")} server={server(".event")} spellcheck={false} />
      <ConditionField
        id="panel-condition"
        label="Only an event where (optional)"
        value={value.if}
        onChange={(text) => set("if", text)}
        server={server(".if")}
        eventNote="Here event means the awaited event, and origin the event that started the session."
      />
      <TextField id="panel-timeout" label="Give up after" value={value.timeout} onInput={(text) => set("timeout", text)} check={(text) => durationProblem(text)} server={server(".timeout")} hint="e.g. 3d" spellcheck={false} />
    </Panel>
  );
}
