// What every step panel shares: labelled inputs that show a problem as it is typed,
// the step id field, the server's problems for the step, key/value and list editors,
// and small helpers that change one key of a step's value.
import { useEffect, useState } from "preact/hooks";
import { slugProblem } from "../checks.js";

/** `value` with `key` set, or removed when `next` is undefined (key order kept). */
export function withKey(value, key, next) {
  const base = value && typeof value === "object" && !Array.isArray(value) ? value : {};
  if (next === undefined) {
    const { [key]: _removed, ...rest } = base;
    return rest;
  }
  return key in base ? Object.fromEntries(Object.entries(base).map(([k, v]) => [k, k === key ? next : v])) : { ...base, [key]: next };
}

/** The step with its action value replaced. */
export function withAction(step, kind, value) {
  return withKey(step, kind, value);
}

/** "" → undefined, so that clearing an optional input removes its key. */
export const orUndefined = (text) => (text === "" ? undefined : text);

/** The problems whose loc is at `suffix` of this step's `kind` (`.email.subject`), or
 * all of them when `suffix` is null. Locs look like `steps[2].email.subject`. */
export function problemsAt(problems, kind, suffix) {
  return (problems || []).filter((p) => {
    const loc = p.loc || "";
    const tail = `${kind}${suffix}`;
    return loc === tail || loc.endsWith(`.${tail}`) || loc.endsWith(`]${tail}`);
  });
}

/** A problem's loc as seen from its step: `email.subject` for `steps[2].email.subject`. */
export function shortLoc(loc, kind) {
  if (!kind) return loc;
  const i = Math.max(loc.lastIndexOf(`.${kind}`), -1);
  return i >= 0 ? loc.slice(i + 1) : loc;
}

/** A message under an input: the typed check first, then the server's, each once
 * (the server says the same as the typed check of an invalid duration). */
function Message({ id, local, server }) {
  const messages = [...new Set([local, ...(server || []).map((p) => p.msg)].filter(Boolean))];
  if (!messages.length) return null;
  return (
    <p class="panel-problem" id={id} role="alert">
      {messages.join("; ")}
    </p>
  );
}

/**
 * A labelled input. `check(value)` → message or null is run as the person types;
 * `server` are the server's problems at this input.
 */
export function TextField({ id, label, value, onInput, check, server, hint, type = "text", multiline, rows = 6, ...rest }) {
  const local = check ? check(value ?? "") : null;
  const invalid = Boolean(local || server?.length);
  const described = [hint && `${id}-hint`, invalid && `${id}-problem`].filter(Boolean).join(" ") || undefined;
  const props = {
    id,
    value: value ?? "",
    "aria-invalid": invalid ? "true" : undefined,
    "aria-describedby": described,
    onInput: (e) => onInput(e.currentTarget.value),
    ...rest,
  };
  return (
    <div class={`panel-field${invalid ? " invalid" : ""}`}>
      <label for={id}>{label}</label>
      {multiline ? <textarea rows={rows} {...props} /> : <input type={type} {...props} />}
      {hint && (
        <p class="panel-hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      {invalid && <Message id={`${id}-problem`} local={local} server={server} />}
    </div>
  );
}

/** A labelled select of `options` ([value, label] pairs). */
export function SelectField({ id, label, value, onChange, options, server, hint }) {
  const invalid = Boolean(server?.length);
  return (
    <div class={`panel-field${invalid ? " invalid" : ""}`}>
      <label for={id}>{label}</label>
      <select
        id={id}
        value={value ?? ""}
        aria-invalid={invalid ? "true" : undefined}
        aria-describedby={[hint && `${id}-hint`, invalid && `${id}-problem`].filter(Boolean).join(" ") || undefined}
        onChange={(e) => onChange(e.currentTarget.value)}
      >
        {options.map(([v, text]) => (
          <option key={v} value={v}>
            {text}
          </option>
        ))}
      </select>
      {hint && (
        <p class="panel-hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      {invalid && <Message id={`${id}-problem`} server={server} />}
    </div>
  );
}

/** A labelled checkbox. */
export function CheckField({ id, label, checked, onChange, hint }) {
  return (
    <div class="panel-field panel-check">
      <input id={id} type="checkbox" checked={checked} onChange={(e) => onChange(e.currentTarget.checked)} aria-describedby={hint ? `${id}-hint` : undefined} />
      <label for={id}>{label}</label>
      {hint && (
        <p class="panel-hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
    </div>
  );
}

/** The step's id: editable, checked as typed; clearing it removes the key (the step then
 * gets an id from its position, which is why the hint says to keep one). */
export function StepId({ step, onChange, problems }) {
  const server = (problems || []).filter((p) => /(^|\.|\])id$/.test(p.loc || ""));
  return (
    <TextField
      id="panel-id"
      label="Step id"
      value={step.id}
      onInput={(text) => onChange(withKey(step, "id", orUndefined(text)))}
      check={(text) => (text === "" ? null : slugProblem(text))}
      server={server}
      hint="Sessions keep their place across edits by this id."
      spellcheck={false}
      autocomplete="off"
    />
  );
}

/** Every server problem of the step, with its loc as seen from the step. */
export function StepProblems({ problems, kind }) {
  if (!problems?.length) return null;
  return (
    <section class="panel-problems" aria-label="Problems in this step">
      <h3>Problems</h3>
      <ul>
        {problems.map((p, i) => (
          <li key={i}>
            {p.loc ? <code>{shortLoc(p.loc, kind)}</code> : null} {p.msg}
          </li>
        ))}
      </ul>
    </section>
  );
}

/** A panel's frame: heading, id field, the form, the step's problems. */
export function Panel({ title, step, onChange, context, kind, children, help }) {
  return (
    <form class="panel" data-kind={kind} onSubmit={(e) => e.preventDefault()}>
      <h2 class="panel-title">{title}</h2>
      {help && <p class="panel-help">{help}</p>}
      <StepId step={step} onChange={onChange} problems={context?.problems} />
      {children}
      <StepProblems problems={context?.problems} kind={kind} />
    </form>
  );
}

/**
 * Text kept as typed while it reads back to the same value: a list typed as "a, b, "
 * must not lose its trailing comma on every keystroke. When the value changes from
 * outside (the YAML tab, undo), the text follows it.
 */
export function useDraft(value, format, parse) {
  const [text, setText] = useState(() => format(value));
  useEffect(() => {
    if (JSON.stringify(parse(text)) !== JSON.stringify(value)) setText(format(value));
  }, [JSON.stringify(value)]);
  return [text, setText];
}

const formatList = (list) => (Array.isArray(list) ? list.join(", ") : "");
export const parseList = (text) =>
  text
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

/** A list of short texts typed comma-separated (tags, event types, field names). */
export function ListField({ id, label, value, onChange, server, hint, check }) {
  const [text, setText] = useDraft(value, formatList, parseList);
  return (
    <TextField
      id={id}
      label={label}
      value={text}
      server={server}
      hint={hint ?? "Separate them with commas."}
      check={check ? () => check(parseList(text)) : undefined}
      onInput={(next) => {
        setText(next);
        const list = parseList(next);
        onChange(list.length ? list : undefined);
      }}
      spellcheck={false}
    />
  );
}

/** A value shown in a key/value row: strings as they are, anything else as JSON. */
const shownValue = (v) => (typeof v === "string" ? v : JSON.stringify(v));

/** The typed text as the value to store: a value that was not a string stays of its JSON
 * type when the text still reads as JSON (a number stays a number). */
function storedValue(text, before) {
  if (before !== undefined && typeof before !== "string") {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

/**
 * Key/value rows (webhook headers and body, field values, event details). `value` is a
 * mapping; rows with an empty name are kept while typed and left out of the mapping.
 */
export function KeyValues({ id, legend, value, onChange, keyLabel = "Name", valueLabel = "Value", server, checkKey, prefix = "" }) {
  const entries = Object.entries(value && typeof value === "object" ? value : {});
  // "Event 2: detail 1" after a prefix, "Detail 1" alone.
  const named = (label) => (prefix ? `${prefix}${label.toLowerCase()}` : label);
  const [rows, setRows] = useState(() => entries.map(([k, v]) => ({ key: k, text: shownValue(v), before: v })));
  useEffect(() => {
    const current = toMapping(rows);
    if (JSON.stringify(current) !== JSON.stringify(value ?? {})) {
      setRows(Object.entries(value ?? {}).map(([k, v]) => ({ key: k, text: shownValue(v), before: v })));
    }
  }, [JSON.stringify(value)]);
  const change = (next) => {
    setRows(next);
    const mapping = toMapping(next);
    onChange(Object.keys(mapping).length ? mapping : undefined);
  };
  return (
    <fieldset class="panel-kv" id={id}>
      <legend>{legend}</legend>
      {rows.map((row, i) => {
        const keyProblem = row.key && checkKey ? checkKey(row.key) : null;
        const duplicate = row.key && rows.findIndex((r) => r.key === row.key) !== i ? `'${row.key}' is given twice` : null;
        const rowServer = (server || []).filter((p) => (p.loc || "").endsWith(`.${row.key}`));
        return (
          <div class="panel-kv-row" key={i}>
            <TextField
              id={`${id}-${i}-key`}
              label={`${named(keyLabel)} ${i + 1}`}
              value={row.key}
              check={() => keyProblem || duplicate}
              onInput={(key) => change(rows.map((r, j) => (j === i ? { ...r, key } : r)))}
              spellcheck={false}
            />
            <TextField
              id={`${id}-${i}-value`}
              label={`${named(valueLabel)} ${i + 1}`}
              value={row.text}
              server={rowServer}
              onInput={(text) => change(rows.map((r, j) => (j === i ? { ...r, text } : r)))}
            />
            <button type="button" class="panel-remove" aria-label={`Remove ${named(keyLabel).toLowerCase()} ${i + 1}${row.key ? ` (${row.key})` : ""}`} onClick={() => change(rows.filter((_, j) => j !== i))}>
              Remove
            </button>
          </div>
        );
      })}
      <button type="button" onClick={() => setRows([...rows, { key: "", text: "" }])}>
        Add {named(keyLabel).toLowerCase()}
      </button>
    </fieldset>
  );
}

function toMapping(rows) {
  const mapping = {};
  for (const row of rows) {
    if (row.key && !(row.key in mapping)) mapping[row.key] = storedValue(row.text, row.before);
  }
  return mapping;
}
