// The track step (SPEC §2.2): record an event for the visitor, which can start other
// flows (type and detail values may be templates).
import { KeyValues, Panel, problemsAt, TextField, withAction, withKey } from "./common.jsx";

const KIND = "track";

export default function Track({ step, onChange, context }) {
  const value = step.track && typeof step.track === "object" ? step.track : {};
  const set = (key, v) => onChange(withAction(step, KIND, withKey(value, key, v)));
  return (
    <Panel title="Record an event" kind={KIND} step={step} onChange={onChange} context={context} help="The event can start other flows.">
      <TextField id="panel-track-type" label="Event type" value={value.type} onInput={(text) => set("type", text)} check={(text) => (text.trim() ? null : "an event type is required")} server={problemsAt(context?.problems, KIND, ".type")} spellcheck={false} />
      <KeyValues id="panel-track-details" legend="Details" keyLabel="Detail" value={value.details} onChange={(m) => set("details", m)} server={problemsAt(context?.problems, KIND, ".details")} />
    </Panel>
  );
}
