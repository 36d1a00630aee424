// The split step (SPEC §2.2): branches picked at random by weight. Branches are added
// and removed on the canvas; here each gets its weight, and the share it makes.
import { Panel, problemsAt, TextField, withAction } from "./common.jsx";

const KIND = "split";

/** A weight as typed: a whole number when it reads as one, else the text (which the
 * server refuses with its message). */
const weightOf = (text) => (/^\d+$/.test(text.trim()) ? Number(text.trim()) : text);

export default function Split({ step, onChange, context }) {
  const branches = Array.isArray(step.split) ? step.split : [];
  const total = branches.reduce((sum, b) => sum + (Number.isInteger(b?.weight) ? b.weight : 0), 0);
  const setWeight = (i, weight) => onChange(withAction(step, KIND, branches.map((b, j) => (j === i ? { ...b, weight } : b))));
  return (
    <Panel title="Split (A/B test)" kind={KIND} step={step} onChange={onChange} context={context} help="Each visitor takes one branch, drawn by weight once and kept.">
      {branches.map((branch, i) => {
        const weight = branch?.weight;
        const share = Number.isInteger(weight) && total > 0 ? Math.round((weight / total) * 100) : null;
        return (
          <TextField
            key={i}
            id={`panel-weight-${i}`}
            label={`Branch ${i + 1} weight`}
            value={weight == null ? "" : String(weight)}
            inputMode="numeric"
            onInput={(text) => setWeight(i, weightOf(text))}
            check={(text) => (/^\d+$/.test(text.trim()) ? null : "a weight is a whole number, 0 or more")}
            server={problemsAt(context?.problems, KIND, `[${i}].weight`)}
            hint={share === null ? undefined : `${share}% of visitors${weight === 0 ? " (paused)" : ""}`}
          />
        );
      })}
      {branches.length > 0 && total === 0 && (
        <p class="panel-problem" role="alert">
          At least one branch needs a weight above 0.
        </p>
      )}
    </Panel>
  );
}
