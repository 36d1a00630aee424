// The webhook step (SPEC §2.2, §4.2): URL, method, headers, a body given as key/value
// pairs or as JSON (or the standard payload when none), timeout and retries. Steps for a
// final failure (`on_failure`) are added on the canvas.
import { useState } from "preact/hooks";
import { durationProblem, urlProblem } from "../checks.js";
import { KeyValues, orUndefined, Panel, problemsAt, SelectField, TextField, useDraft, withAction, withKey } from "./common.jsx";

const KIND = "webhook";
const METHODS = ["POST", "GET", "PUT", "PATCH", "DELETE"];
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Whether a body reads as key/value rows: a mapping of strings, numbers and booleans. */
export function isFlat(body) {
  return body && typeof body === "object" && !Array.isArray(body) && Object.values(body).every((v) => v === null || typeof v !== "object");
}

export default function Webhook({ step, onChange, context }) {
  const value = step.webhook && typeof step.webhook === "object" ? step.webhook : {};
  const set = (key, v) => onChange(withAction(step, KIND, withKey(value, key, v)));
  const server = (suffix) => problemsAt(context?.problems, KIND, suffix);
  const under = (prefix) => (context?.problems ?? []).filter((p) => (p.loc ?? "").includes(`.${KIND}.${prefix}.`));
  const [bodyMode, setBodyMode] = useState(!("body" in value) ? "standard" : isFlat(value.body) ? "fields" : "json");
  const retries = value.retries;
  const attempts = retries && typeof retries === "object" ? retries.attempts : retries;
  const backoff = retries && typeof retries === "object" ? retries.backoff : undefined;
  const setRetries = (nextAttempts, nextBackoff) => {
    const n = /^\d+$/.test(String(nextAttempts ?? "").trim()) ? Number(String(nextAttempts).trim()) : orUndefined(nextAttempts ?? "");
    if (n === undefined && !nextBackoff) set("retries", undefined);
    else set("retries", nextBackoff ? { attempts: n, backoff: nextBackoff } : n);
  };
  const chooseBody = (mode) => {
    setBodyMode(mode);
    if (mode === "standard") set("body", undefined);
    else if (mode === "fields" && !isFlat(value.body)) set("body", { email: "{{ visitor.email }}" });
    else if (mode === "json" && !("body" in value)) set("body", { email: "{{ visitor.email }}" });
  };

  return (
    <Panel title="Call a webhook" kind={KIND} step={step} onChange={onChange} context={context} help="Steps to run when it fails for good go on the canvas (on failure); without them the session fails.">
      <TextField id="panel-url" label="URL" type="url" value={value.url} onInput={(text) => set("url", text)} check={urlProblem} server={server(".url")} spellcheck={false} />
      <SelectField id="panel-method" label="Method" value={(value.method ?? "POST").toUpperCase()} options={METHODS.map((m) => [m, m])} onChange={(m) => set("method", m === "POST" && !("method" in value) ? undefined : m)} server={server(".method")} />
      <KeyValues id="panel-headers" legend="Headers" keyLabel="Header" value={value.headers} onChange={(m) => set("headers", m)} server={under("headers")} checkKey={(name) => (HEADER_NAME.test(name) ? null : `invalid header name '${name}'`)} />
      <SelectField
        id="panel-body-mode"
        label="Body"
        value={bodyMode}
        onChange={chooseBody}
        options={[
          ["standard", "The standard payload (visitor, event, flow)"],
          ["fields", "Fields (name and value)"],
          ["json", "JSON"],
        ]}
      />
      {bodyMode === "fields" && <KeyValues id="panel-body" legend="Body fields" keyLabel="Field" value={isFlat(value.body) ? value.body : {}} onChange={(m) => set("body", m ?? {})} server={under("body")} />}
      {bodyMode === "json" && <JsonBody value={value.body} onChange={(body) => set("body", body)} server={server(".body").concat(under("body"))} />}
      <TextField id="panel-timeout" label="Timeout (optional)" value={value.timeout} onInput={(text) => set("timeout", orUndefined(text))} check={(text) => durationProblem(text, { required: false })} server={server(".timeout")} hint="e.g. 10s" spellcheck={false} />
      <fieldset class="panel-retries">
        <legend>Retries</legend>
        <TextField id="panel-attempts" label="Attempts (optional)" inputMode="numeric" value={attempts == null ? "" : String(attempts)} onInput={(text) => setRetries(text, backoff)} check={(text) => (text === "" || /^[1-9]\d*$/.test(text.trim()) ? null : "attempts is a whole number, 1 or more")} server={server(".retries").concat(server(".retries.attempts"))} />
        <TextField id="panel-backoff" label="Backoff (optional, doubled after each attempt)" value={backoff} onInput={(text) => setRetries(attempts, orUndefined(text))} check={(text) => durationProblem(text, { required: false })} server={server(".retries.backoff")} hint="e.g. 30s" spellcheck={false} />
      </fieldset>
    </Panel>
  );
}

/** The body as JSON text: stored when it parses, flagged while it does not. */
function JsonBody({ value, onChange, server }) {
  const format = (v) => JSON.stringify(v ?? {}, null, 2);
  const parse = (text) => {
    try {
      return JSON.parse(text);
    } catch {
      return undefined;
    }
  };
  const [text, setText] = useDraft(value, format, parse);
  return (
    <TextField
      id="panel-body-json"
      label="Body (JSON; string values are templates)"
      multiline
      rows={8}
      spellcheck={false}
      value={text}
      server={server}
      check={(t) => {
        try {
          JSON.parse(t);
          return null;
        } catch (error) {
          return `not JSON: ${error.message}`;
        }
      }}
      onInput={(t) => {
        setText(t);
        const parsed = parse(t);
        if (parsed !== undefined) onChange(parsed);
      }}
    />
  );
}
