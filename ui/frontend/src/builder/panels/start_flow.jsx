// The start_flow step (SPEC §2.2): start a session of another flow for this visitor.
import { Panel, problemsAt, SelectField, withAction } from "./common.jsx";

const KIND = "start_flow";

export default function StartFlow({ step, onChange, context }) {
  const flows = context?.flows ?? [];
  const current = typeof step.start_flow === "string" ? step.start_flow : "";
  const known = flows.includes(current) || current === context?.flowKey;
  const options = [
    ...(current ? [] : [["", "Pick a flow"]]),
    ...flows.map((key) => [key, key]),
    ...(current && !known ? [[current, `${current} (unknown)`]] : []),
  ];
  return (
    <Panel title="Start another flow" kind={KIND} step={step} onChange={onChange} context={context} help="Starts it with the same origin event, if that flow is on and its entry rules allow.">
      <SelectField id="panel-start-flow" label="Flow" value={current} options={options} onChange={(key) => onChange(withAction(step, KIND, key))} server={problemsAt(context?.problems, KIND, "")} />
      {current && !known && (
        <p class="panel-problem" role="alert">
          There is no flow '{current}'.
        </p>
      )}
    </Panel>
  );
}
