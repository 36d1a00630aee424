// The if step (SPEC §2.2, §2.4): a condition; its `then` and `else` branches are on the
// canvas.
import { ConditionField } from "../conditions.jsx";
import { Panel, problemsAt, withAction } from "./common.jsx";

const KIND = "if";

export default function If({ step, onChange, context }) {
  return (
    <Panel title="If" kind={KIND} step={step} onChange={onChange} context={context} help="Visitors for whom the condition holds take the 'then' branch, the others 'else'.">
      <ConditionField id="panel-condition" label="Condition" value={typeof step.if === "string" ? step.if : step.if == null ? "" : String(step.if)} onChange={(text) => onChange(withAction(step, KIND, text ?? ""))} server={problemsAt(context?.problems, KIND, "")} />
    </Panel>
  );
}
