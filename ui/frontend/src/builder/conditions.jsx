// The condition builder: rows of subject, operator and value joined by and/or, and the
// "write it as Liquid" text box, always one click away (conditions.js reads and writes
// the Liquid).
import { useEffect, useState } from "preact/hooks";
import { newRow, OPERATORS, parseCondition, rowProblem, SUBJECTS, TAG_OPERATORS, takesValue, writeCondition } from "./conditions.js";

const TYPES = [
  ["text", "text"],
  ["number", "number"],
  ["boolean", "yes/no"],
];

/**
 * `value`: the condition's Liquid text (or undefined: no condition); `onChange(text)`
 * with the new text, undefined when every row is gone. `server`: the server's problems
 * of the condition. `id` prefixes every control's id. `eventNote` says what `event`
 * means here (in `wait_for`, the awaited event).
 */
export function ConditionField({ id, label, value, onChange, server, eventNote }) {
  const parsed = parseCondition(value ?? "");
  const [liquid, setLiquid] = useState(parsed === null);
  const [state, setState] = useState(() => parsed ?? { join: "and", rows: [] });
  useEffect(() => {
    // A change from outside (the YAML tab, undo) that the rows do not say: read it again.
    if (writeCondition(state) !== (value ?? "")) {
      const again = parseCondition(value ?? "");
      if (again) setState(again);
      else setLiquid(true);
    }
  }, [value]);

  const change = (next) => {
    setState(next);
    const text = writeCondition(next);
    onChange(text === "" ? undefined : text);
  };
  const setRow = (i, row) => change({ ...state, rows: state.rows.map((r, j) => (j === i ? row : r)) });
  const invalid = Boolean(server?.length);

  return (
    <fieldset class={`condition${invalid ? " invalid" : ""}`} id={id}>
      <legend>{label}</legend>
      {eventNote && <p class="panel-hint">{eventNote}</p>}
      {liquid ? (
        <div class="panel-field">
          <label for={`${id}-liquid`}>Condition in Liquid</label>
          <textarea
            id={`${id}-liquid`}
            rows={3}
            spellcheck={false}
            value={value ?? ""}
            aria-invalid={invalid ? "true" : undefined}
            aria-describedby={`${id}-liquid-hint${invalid ? ` ${id}-problem` : ""}`}
            onInput={(e) => onChange(e.currentTarget.value === "" ? undefined : e.currentTarget.value)}
          />
          <p class="panel-hint" id={`${id}-liquid-hint`}>
            e.g. <code>visitor.tags contains "vip" and event.details.amount &gt; 100</code>
          </p>
          <button
            type="button"
            disabled={parsed === null}
            title={parsed === null ? "This condition has a shape the builder cannot show as rows" : undefined}
            onClick={() => {
              setState(parsed);
              setLiquid(false);
            }}
          >
            Use the condition builder
          </button>
          {parsed === null && value && (
            <p class="panel-hint">This condition is more than rows can say, so it stays as Liquid.</p>
          )}
        </div>
      ) : (
        <div class="condition-rows">
          {state.rows.length > 1 && (
            <div class="panel-field">
              <label for={`${id}-join`}>Match</label>
              <select id={`${id}-join`} value={state.join} onChange={(e) => change({ ...state, join: e.currentTarget.value })}>
                <option value="and">all of these (and)</option>
                <option value="or">any of these (or)</option>
              </select>
            </div>
          )}
          {state.rows.length === 0 && <p class="panel-hint">No condition: always true.</p>}
          {state.rows.map((row, i) => (
            <Row key={i} id={`${id}-${i}`} n={i + 1} row={row} onChange={(r) => setRow(i, r)} onRemove={() => change({ ...state, rows: state.rows.filter((_, j) => j !== i) })} />
          ))}
          <button type="button" onClick={() => change({ ...state, rows: [...state.rows, newRow("field")] })}>
            Add a condition
          </button>{" "}
          <button type="button" onClick={() => setLiquid(true)}>
            Write it as Liquid
          </button>
        </div>
      )}
      {invalid && (
        <p class="panel-problem" id={`${id}-problem`} role="alert">
          {server.map((p) => p.msg).join("; ")}
        </p>
      )}
    </fieldset>
  );
}

function Row({ id, n, row, onChange, onRemove }) {
  const problem = rowProblem(row);
  const operators = row.subject === "tag" ? TAG_OPERATORS : OPERATORS;
  const setSubject = (subject) => {
    if (subject === row.subject) return;
    const fresh = newRow(subject);
    onChange({ ...fresh, name: subject === "tag" ? "" : row.name, value: row.value });
  };
  return (
    <div class={`condition-row${problem ? " invalid" : ""}`} role="group" aria-label={`Condition ${n}`}>
      <span class="condition-field">
        <label for={`${id}-subject`}>Condition {n}: what</label>
        <select id={`${id}-subject`} value={row.subject} onChange={(e) => setSubject(e.currentTarget.value)}>
          {Object.entries(SUBJECTS).map(([value, text]) => (
            <option key={value} value={value}>
              {text}
            </option>
          ))}
        </select>
      </span>
      {row.subject !== "tag" && (
        <span class="condition-field">
          <label for={`${id}-name`}>{row.subject === "event" ? "Detail" : "Field"} name</label>
          <input id={`${id}-name`} value={row.name} spellcheck={false} onInput={(e) => onChange({ ...row, name: e.currentTarget.value })} />
        </span>
      )}
      <span class="condition-field">
        <label for={`${id}-operator`}>Test</label>
        <select id={`${id}-operator`} value={row.operator} onChange={(e) => onChange({ ...row, operator: e.currentTarget.value })}>
          {Object.entries(operators).map(([value, spec]) => (
            <option key={value} value={value}>
              {spec.label}
            </option>
          ))}
        </select>
      </span>
      {takesValue(row) && row.subject !== "tag" && (
        <span class="condition-field">
          <label for={`${id}-type`}>Value type</label>
          <select
            id={`${id}-type`}
            value={row.type}
            onChange={(e) => {
              const type = e.currentTarget.value;
              onChange({ ...row, type, value: type === "boolean" && row.value !== "false" ? "true" : row.value });
            }}
          >
            {TYPES.map(([value, text]) => (
              <option key={value} value={value}>
                {text}
              </option>
            ))}
          </select>
        </span>
      )}
      {takesValue(row) &&
        (row.type === "boolean" ? (
          <span class="condition-field">
            <label for={`${id}-value`}>Value</label>
            <select id={`${id}-value`} value={row.value} onChange={(e) => onChange({ ...row, value: e.currentTarget.value })}>
              <option value="true">yes (true)</option>
              <option value="false">no (false)</option>
            </select>
          </span>
        ) : (
          <span class="condition-field">
            <label for={`${id}-value`}>{row.subject === "tag" ? "Tag" : "Value"}</label>
            <input
              id={`${id}-value`}
              value={row.value}
              inputMode={row.type === "number" ? "decimal" : undefined}
              aria-invalid={problem ? "true" : undefined}
              aria-describedby={problem ? `${id}-problem` : undefined}
              onInput={(e) => onChange({ ...row, value: e.currentTarget.value })}
            />
          </span>
        ))}
      <button type="button" class="panel-remove" aria-label={`Remove condition ${n}`} onClick={onRemove}>
        Remove
      </button>
      {problem && (
        <p class="panel-problem" id={`${id}-problem`} role="alert">
          {problem} (left out until fixed)
        </p>
      )}
    </div>
  );
}
