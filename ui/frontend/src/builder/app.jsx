// The builder: the flow's document and text, kept in step through the server (a
// builder edit sends {text, document} and gets the merged text; a YAML edit sends
// {text} and gets the document), with the problems of every change, undo/redo, the
// Canvas and YAML tabs, the side panel of the selected box, and saving.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Canvas } from "./canvas.jsx";
import { YamlEditor } from "./yaml.jsx";
import panels from "./panels/index.js";
import { TryOut } from "./tryout.jsx";
import { utcMinute } from "./time.js";
import {
  KINDS,
  addBranch,
  findStep,
  insertStep,
  kindOf,
  moveStep,
  newStep,
  pathKey,
  problemsByStep,
  removeBranch,
  removeStep,
  stepAt,
  stepId,
  updateStep,
  within,
} from "./document.js";

const YAML_DELAY = 300; // ms of quiet typing before the YAML is read
const HISTORY = 100;
const IMPACT_DELAY = 400; // ms after a valid change before asking what saving would do

/**
 * `config`: {key (null for a new flow), version (the one `text` was read from, null
 * for a new flow), text, document, csrf, flows: [keys],
 * templates: [{key, subject}], draft: {actor, updated_at} | null (text and document are
 * then the draft's)} from the page; `api`: api.js client(csrf).
 */
export function App({ config, api }) {
  const [text, setText] = useState(config.text);
  const [doc, setDoc] = useState(config.document);
  const [problems, setProblems] = useState(config.problems || []);
  const [checking, setChecking] = useState(false);
  const [readable, setReadable] = useState(config.document != null);
  const [selected, setSelected] = useState(null); // a step id, "trigger" or null
  const [tab, setTab] = useState("canvas");
  const [history, setHistory] = useState({ undo: [], redo: [] });
  const [note, setNote] = useState("");
  const [message, setMessage] = useState(null); // {kind: "ok" | "error", text}
  const [confirm, setConfirm] = useState(null); // {impact, resolve}
  const [busy, setBusy] = useState(false);
  const [draftSaved, setDraftSaved] = useState(config.draft || null); // the stored draft
  // What the try-out reports: the visitor, rendered subjects, the simulated path.
  const [tryout, setTryout] = useState({ visitor: null, rendered: {}, path: [] });
  const latest = useRef(0);
  const state = useRef({ text, doc });
  state.current = { text, doc };
  const yamlTimer = useRef(null);

  /** Ask the server for the text of `document` (or the document of `text`). */
  async function sync(baseText, document) {
    const seq = ++latest.current;
    setChecking(true);
    try {
      const answer = await api.document(config.key, baseText, document);
      if (seq !== latest.current) return;
      if (document !== null) setText(answer.text);
      else if (answer.document != null) setDoc(answer.document);
      setReadable(answer.document != null);
      setProblems(answer.problems || []);
      window.dispatchEvent(new CustomEvent("sluice:checked", { detail: { problems: answer.problems } }));
    } catch (error) {
      if (seq === latest.current) setMessage({ kind: "error", text: `Could not check the flow: ${error.message}` });
    } finally {
      if (seq === latest.current) setChecking(false);
    }
  }

  function remember() {
    setHistory((h) => ({ undo: [...h.undo.slice(-HISTORY + 1), state.current], redo: [] }));
  }

  /** Read the typed YAML now rather than after the pause (leaving the YAML tab). */
  function flushTyping() {
    if (!yamlTimer.current) return;
    clearTimeout(yamlTimer.current);
    yamlTimer.current = null;
    sync(state.current.text, null);
  }

  /** A builder edit: the new document, merged into the text by the server. */
  function edit(next) {
    remember();
    setDoc(next);
    setMessage(null);
    sync(state.current.text, next);
  }

  function typed(next) {
    // One undo entry per pause in typing.
    if (!yamlTimer.current) remember();
    clearTimeout(yamlTimer.current);
    setText(next);
    setMessage(null);
    yamlTimer.current = setTimeout(() => {
      yamlTimer.current = null;
      sync(next, null);
    }, YAML_DELAY);
  }

  function restore(from, to) {
    const h = history;
    if (!h[from].length) return;
    const snapshot = h[from][h[from].length - 1];
    clearTimeout(yamlTimer.current); // the typing undone is not read afterwards
    yamlTimer.current = null;
    setHistory({ [from]: h[from].slice(0, -1), [to]: [...h[to], state.current] });
    setText(snapshot.text);
    setDoc(snapshot.doc);
    sync(snapshot.text, null); // the text as it was, comments and all
  }

  // What saving would do to live sessions, beside Save, kept up to date after each
  // valid change (a moment after it: one preview per pause, not per keystroke).
  const [impact, setImpact] = useState(null);
  useEffect(() => {
    if (!config.key || checking || problems.length) return undefined;
    let current = true;
    const timer = setTimeout(async () => {
      try {
        const preview = await api.preview(config.key, text);
        if (current) setImpact(preview.problems?.length ? null : preview.impact);
      } catch {
        if (current) setImpact(null);
      }
    }, IMPACT_DELAY);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [text, checking, problems.length]);

  useEffect(() => {
    const keys = (event) => {
      if (!(event.ctrlKey || event.metaKey) || event.key.toLowerCase() !== "z") return;
      if (!event.target.closest?.(".builder-canvas")) return; // inputs and the YAML have their own
      event.preventDefault();
      restore(event.shiftKey ? "redo" : "undo", event.shiftKey ? "undo" : "redo");
    };
    window.addEventListener("keydown", keys);
    return () => window.removeEventListener("keydown", keys);
  });

  const grouped = useMemo(() => problemsByStep(problems), [problems]);
  const selectedPath = selected && selected !== "trigger" && doc ? findStep(doc, selected) : null;
  const context = {
    flows: config.flows || [],
    templates: config.templates || [],
    csrf: config.csrf,
    flowKey: config.key,
    visitor: tryout.visitor,
    rendered: tryout.rendered,
    path: tryout.path,
  };

  // -- canvas callbacks ------------------------------------------------------------------
  const onInsert = (lane, index, kind) => {
    const step = newStep(kind, doc, { flows: context.flows });
    edit(insertStep(doc, lane, index, step));
    setSelected(step.id);
    return step.id;
  };
  const onMove = (from, lane, index) => {
    const moved = moveStep(doc, from, lane, index);
    edit(moved.doc);
    const id = stepId(stepAt(moved.doc, moved.path), moved.path);
    if (selected === stepId(stepAt(doc, from), from)) setSelected(id);
    return id;
  };
  const onRemove = (path) => {
    if (selectedPath && within(selectedPath, path)) setSelected(null);
    edit(removeStep(doc, path));
  };
  const onSelect = (path) => setSelected(path === "trigger" ? "trigger" : stepId(stepAt(doc, path), path));

  // -- saving ----------------------------------------------------------------------------
  /** Whether saving `text` may go ahead: the server finds no problem, and when the edit
   * makes live sessions send at once, the person confirms with the numbers. */
  async function confirmed(key) {
    const preview = await api.preview(key, text);
    if (preview.problems?.length) {
      setProblems(preview.problems);
      setMessage({ kind: "error", text: "The server found problems: nothing was saved." });
      return false;
    }
    const impact = preview.impact;
    if (impact?.sends_at_once?.sessions > 0) {
      const go = await new Promise((resolve) => setConfirm({ impact, resolve }));
      setConfirm(null);
      if (!go) {
        setMessage({ kind: "ok", text: "Not saved." });
        return false;
      }
    }
    return true;
  }

  async function save() {
    if (problems.length) {
      setMessage({ kind: "error", text: `Fix the ${problems.length} problem${problems.length === 1 ? "" : "s"} first.` });
      return;
    }
    const key = config.key || doc?.key;
    setBusy(true);
    setMessage(null);
    try {
      if (config.key && !(await confirmed(key))) return;
      const saved = await api.save(key, text, note, config.version);
      setNote("");
      if (!config.key) {
        window.location.assign(`/flows/${encodeURIComponent(key)}?tab=build`);
        return;
      }
      // What was saved is what the draft held and more: the draft has served.
      if (draftSaved) await api.discardDraft(key).catch(() => null);
      reloadSaying(`Saved version ${saved.version}.`);
    } catch (error) {
      if (error.problems?.length) setProblems(error.problems);
      setMessage({ kind: "error", text: `Not saved: ${error.message}.${meanwhile(error)}` });
    } finally {
      setBusy(false);
    }
  }

  /** Open the flow's page again, saying `notice` there (the page's notice cookie, as
   * after a form): its version, versions tab and what saving would do are now those
   * of what was just saved. */
  function reloadSaying(notice) {
    document.cookie = `sluice_notice=${encodeURIComponent(notice)}; path=/; max-age=60; samesite=lax`;
    window.location.assign(`/flows/${encodeURIComponent(config.key)}?tab=build`);
  }

  /** Save the text as the flow's draft (the live version runs on), publish it (as a
   * save: confirmed when it sends at once), or throw the stored draft away. */
  async function draft(action) {
    setBusy(true);
    setMessage(null);
    try {
      if (action === "save") {
        const saved = await api.saveDraft(config.key, text);
        setDraftSaved(saved);
        setMessage({ kind: "ok", text: "Draft saved. The live version runs unchanged." });
      } else if (action === "publish") {
        if (!(await confirmed(config.key))) return;
        await api.saveDraft(config.key, text);
        const published = await api.publishDraft(config.key, note, config.version);
        setNote("");
        setDraftSaved(null);
        const version = published?.flows?.[config.key];
        reloadSaying(version ? `Draft published as version ${version}.` : "Draft published (the live version was the same).");
      } else {
        await api.discardDraft(config.key);
        setDraftSaved(null);
        setMessage({ kind: "ok", text: "Draft discarded. Reload to edit the live version." });
      }
    } catch (error) {
      if (error.problems?.length) setProblems(error.problems);
      setMessage({ kind: "error", text: `Not done: ${error.message}.${meanwhile(error)}` });
    } finally {
      setBusy(false);
    }
  }

  const count = problems.length;
  const status = checking ? "Checking…" : count ? `${count} problem${count === 1 ? "" : "s"}` : "Valid";
  return (
    <div class="builder">
      <div class="builder-bar">
        <div class="tabs builder-tabs" role="tablist" aria-label="View">
          {["canvas", "yaml"].map((name) => (
            <button
              type="button"
              role="tab"
              id={`builder-tab-${name}`}
              aria-selected={tab === name ? "true" : "false"}
              aria-controls={`builder-${name}`}
              class={tab === name ? "active" : ""}
              onClick={() => {
                flushTyping();
                setTab(name);
              }}
            >
              {name === "canvas" ? "Canvas" : "YAML"}
            </button>
          ))}
        </div>
        <div class="builder-history">
          <button
            type="button"
            class="button small-button"
            disabled={!history.undo.length}
            onClick={() => restore("undo", "redo")}
          >
            Undo
          </button>
          <button
            type="button"
            class="button small-button"
            disabled={!history.redo.length}
            onClick={() => restore("redo", "undo")}
          >
            Redo
          </button>
        </div>
        <span
          class={`badge ${checking ? "badge-muted" : count ? "badge-failed" : "badge-on"}`}
          role="status"
          data-builder-status
        >
          {status}
        </span>
        <div class="builder-save">
          <label class="note-label">
            <span class="visually-hidden">Note for this version</span>
            <input
              type="text"
              class="note-input"
              placeholder="Note (optional)"
              maxLength={500}
              value={note}
              onInput={(e) => setNote(e.currentTarget.value)}
            />
          </label>
          {config.key && (
            <>
              <button type="button" class="button" disabled={busy} onClick={() => draft("save")}>
                Save draft
              </button>
              {draftSaved && (
                <button type="button" class="button" disabled={busy} onClick={() => draft("publish")}>
                  Publish draft
                </button>
              )}
            </>
          )}
          <button type="button" class="button primary" disabled={busy || checking} onClick={save}>
            {config.key ? "Save" : "Create flow"}
          </button>
        </div>
      </div>
      {impact && (impact.warning || impact.summary?.length > 0) && (
        <section
          class={`impact builder-impact ${impact.warning ? "impact-confirm" : ""}`}
          aria-label="What saving does to live sessions"
          aria-live="polite"
          data-impact
        >
          {impact.warning && (
            <p class="impact-warning">
              <strong>Sends at once.</strong> {impact.warning}
            </p>
          )}
          <ul class="impact-lines">
            {(impact.summary || []).map((line) => (
              <li>{line}</li>
            ))}
          </ul>
        </section>
      )}
      {draftSaved && (
        <p class="builder-message notice" data-draft-notice>
          A draft is saved{draftSaved.actor ? ` by ${draftSaved.actor}` : ""}
          {draftSaved.updated_at ? ` at ${utcMinute(draftSaved.updated_at)}` : ""}: this
          is what you edit here, while the live version keeps running until the draft is published.{" "}
          <button type="button" class="button small-button" disabled={busy} onClick={() => draft("discard")}>
            Discard draft
          </button>
        </p>
      )}
      {message && (
        <p
          class={`builder-message ${message.kind === "error" ? "alert" : "notice"}`}
          role={message.kind === "error" ? "alert" : "status"}
        >
          {message.text}
        </p>
      )}
      {confirm && <ConfirmSend impact={confirm.impact} onAnswer={confirm.resolve} />}
      <div class="builder-body" hidden={tab !== "canvas"} id="builder-canvas" role="tabpanel" aria-labelledby="builder-tab-canvas">
        <section class="card canvas-card builder-canvas-card" aria-label="Canvas">
          {!readable && <p class="alert">The YAML does not read as a flow: the canvas shows it as it last did.</p>}
          {doc && (
            <Canvas
              document={doc}
              problems={grouped}
              selected={selected === "trigger" ? "trigger" : selectedPath}
              context={context}
              onSelect={onSelect}
              onInsert={onInsert}
              onRemove={onRemove}
              onMove={onMove}
              onAddBranch={(path, name) => edit(addBranch(doc, path, name))}
              onRemoveBranch={(path, name) => edit(removeBranch(doc, path, name))}
            />
          )}
        </section>
        <SidePanel
          doc={doc}
          selected={selected}
          path={selectedPath}
          problems={problems}
          grouped={grouped}
          context={context}
          onClose={() => setSelected(null)}
          onChange={(next, newId) => {
            edit(next);
            if (newId !== undefined) setSelected(newId);
          }}
        />
      </div>
      <div hidden={tab !== "canvas"}>
        <section class="card tryout-card">
          <TryOut document={doc} flowKey={config.key} csrf={config.csrf} onChange={setTryout} />
        </section>
      </div>
      {tab === "yaml" && (
        <section class="card builder-yaml" id="builder-yaml" role="tabpanel" aria-labelledby="builder-tab-yaml">
          <YamlEditor text={text} problems={problems} onChange={typed} />
          <ProblemList problems={problems} />
        </section>
      )}
    </div>
  );
}

function SidePanel({ doc, selected, path, problems, grouped, context, onChange, onClose }) {
  let body;
  let title;
  if (selected === "trigger") {
    const Trigger = panels.trigger;
    title = "Trigger and flow settings";
    body = (
      <Trigger
        step={doc}
        context={{ ...context, problems: grouped[""] || [] }}
        onChange={(next) => onChange(next)}
      />
    );
  } else if (path) {
    const step = stepAt(doc, path);
    const kind = kindOf(step);
    const Panel = panels[kind];
    title = `${KINDS.find((k) => k.kind === kind)?.label || "Step"} · ${stepId(step, path)}`;
    body = (
      <Panel
        key={pathKey(path)}
        step={step}
        context={{ ...context, problems: grouped[pathKey(path)] || [] }}
        onChange={(next) => onChange(updateStep(doc, path, next), stepId(next, path))}
      />
    );
  } else {
    return (
      <aside class="card side-panel" aria-label="Step">
        <p class="muted">Select a box to edit it, or “+” to add a step.</p>
        {problems.length > 0 && <ProblemList problems={problems} />}
      </aside>
    );
  }
  return (
    <aside class="card side-panel" aria-label={title}>
      <div class="side-head">
        <h2>{title}</h2>
        <button type="button" class="button small-button" onClick={onClose}>
          Close
        </button>
      </div>
      {body}
    </aside>
  );
}

function ProblemList({ problems }) {
  if (!problems?.length) return null;
  return (
    <ul class="problems" data-problems>
      {problems.map((p) => (
        <li>
          {p.line ? <span class="muted">line {p.line} </span> : null}
          {p.loc && <code>{p.loc}</code>} {p.msg}
        </li>
      ))}
    </ul>
  );
}

/** "Saving sends at once": the numbers of the preview's impact, Save or Cancel. */
/** Asks before a save that makes live sessions send at once, in the server's words
 * (impact.warning and summary). A modal <dialog>: the page behind is inert, focus
 * stays inside, Escape cancels. */
function ConfirmSend({ impact, onAnswer }) {
  const ref = useRef(null);
  useEffect(() => {
    ref.current?.showModal();
    ref.current?.querySelector("button")?.focus();
  }, []);
  return (
    <dialog
      class="modal card"
      role="alertdialog"
      aria-labelledby="confirm-title"
      aria-describedby="confirm-body"
      ref={ref}
      onCancel={(e) => {
        e.preventDefault();
        onAnswer(false);
      }}
    >
      <h2 id="confirm-title">Saving sends at once</h2>
      <div id="confirm-body">
        <p>{impact.warning}</p>
        {(impact.summary || []).length > 0 && (
          <ul>
            {impact.summary.map((line) => (
              <li>{line}</li>
            ))}
          </ul>
        )}
      </div>
      <div class="modal-actions">
        <button type="button" class="button" onClick={() => onAnswer(false)}>
          Cancel
        </button>
        <button type="button" class="button danger" onClick={() => onAnswer(true)}>
          Save and send
        </button>
      </div>
    </dialog>
  );
}

/** What to do when someone saved another version since this page opened (If-Match:
 * the server answered 412): the sentence to add to the error, else "". */
function meanwhile(error) {
  return error.status === 412 ? " Keep a copy of your YAML (the YAML tab), then reload the page to see the current version." : "";
}
