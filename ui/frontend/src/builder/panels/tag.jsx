// The tag step (SPEC §2.2): tags to add and tags to remove (each may be a template).
import { ListField, Panel, problemsAt, withAction, withKey } from "./common.jsx";

const KIND = "tag";

export default function Tag({ step, onChange, context }) {
  const value = step.tag && typeof step.tag === "object" ? step.tag : {};
  const set = (key, list) => onChange(withAction(step, KIND, withKey(value, key, list)));
  const neither = !value.add?.length && !value.remove?.length;
  return (
    <Panel title="Change tags" kind={KIND} step={step} onChange={onChange} context={context}>
      <ListField id="panel-tag-add" label="Add tags" value={value.add} onChange={(list) => set("add", list)} server={problemsAt(context?.problems, KIND, ".add")} check={() => (neither ? "add or remove at least one tag" : null)} />
      <ListField id="panel-tag-remove" label="Remove tags" value={value.remove} onChange={(list) => set("remove", list)} server={problemsAt(context?.problems, KIND, ".remove")} />
    </Panel>
  );
}
