// The subscribe and unsubscribe steps (SPEC §2.2): `subscribe: true` or
// `unsubscribe: true`; this panel serves both and can turn one into the other.
import { Panel, SelectField } from "./common.jsx";

export default function Subscribe({ step, onChange, context }) {
  const kind = "unsubscribe" in step ? "unsubscribe" : "subscribe";
  const change = (next) => {
    if (next === kind) return;
    // The step keeps its place in the key order: id first, then the action.
    onChange(Object.fromEntries(Object.entries(step).map(([k, v]) => (k === kind ? [next, true] : [k, v]))));
  };
  return (
    <Panel title={kind === "subscribe" ? "Subscribe" : "Unsubscribe"} kind={kind} step={step} onChange={onChange} context={context}>
      <SelectField
        id="panel-subscription"
        label="The visitor's subscription"
        value={kind}
        onChange={change}
        options={[
          ["subscribe", "Subscribe them to marketing email"],
          ["unsubscribe", "Unsubscribe them from marketing email"],
        ]}
        hint="Transactional email is sent either way."
      />
    </Panel>
  );
}
