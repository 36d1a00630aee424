// The field step (SPEC §2.2): fields to set (string values are templates; numbers and
// booleans keep their type) and fields to remove.
import { KeyValues, ListField, Panel, problemsAt, withAction, withKey } from "./common.jsx";

const KIND = "field";

export default function Field({ step, onChange, context }) {
  const value = step.field && typeof step.field === "object" ? step.field : {};
  const set = (key, v) => onChange(withAction(step, KIND, withKey(value, key, v)));
  const neither = !Object.keys(value.set ?? {}).length && !value.remove?.length;
  return (
    <Panel title="Change fields" kind={KIND} step={step} onChange={onChange} context={context} help={neither ? "Set or remove at least one field." : undefined}>
      <KeyValues id="panel-field-set" legend="Set fields" keyLabel="Field" valueLabel="Value" value={value.set} onChange={(m) => set("set", m)} server={problemsAt(context?.problems, KIND, ".set").concat((context?.problems ?? []).filter((p) => /\.field\.set\./.test(p.loc ?? "")))} />
      <ListField id="panel-field-remove" label="Remove fields" value={value.remove} onChange={(list) => set("remove", list)} server={problemsAt(context?.problems, KIND, ".remove")} />
    </Panel>
  );
}
