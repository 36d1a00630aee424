// The exit step (SPEC §2.2): end the session `exited`, with a reason if given.
import { orUndefined, Panel, problemsAt, TextField, withAction } from "./common.jsx";

const KIND = "exit";

export default function Exit({ step, onChange, context }) {
  const reason = step.exit && typeof step.exit === "object" ? step.exit.reason : undefined;
  return (
    <Panel title="Exit the flow" kind={KIND} step={step} onChange={onChange} context={context}>
      <TextField
        id="panel-exit-reason"
        label="Reason (optional)"
        value={reason}
        onInput={(text) => onChange(withAction(step, KIND, orUndefined(text) === undefined ? true : { reason: text }))}
        server={problemsAt(context?.problems, KIND, "")}
        hint="Shown on the session's timeline, e.g. purchased"
      />
    </Panel>
  );
}
