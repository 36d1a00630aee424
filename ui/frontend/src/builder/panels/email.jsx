// The email step (SPEC §2.2): a stored template or content written here, the sender
// and reply-to, transactional and tracking; once a try-out visitor is chosen, the email
// rendered for them (POST /api/emails/render).
import { useEffect, useState } from "preact/hooks";
import { addressProblem } from "../checks.js";
import { SendTest } from "../tryout.jsx";
import { failure, renderEmail } from "../tryout-api.js";
import { CheckField, orUndefined, Panel, problemsAt, SelectField, TextField, withAction, withKey } from "./common.jsx";

const KIND = "email";

/** Step id → the content written in the step, kept while a template is tried instead:
 * choosing "Written here" again brings it back, for as long as the page is open. */
const WRITTEN = new Map();

export default function Email({ step, onChange, context }) {
  const email = step.email && typeof step.email === "object" ? step.email : {};
  const set = (key, value) => onChange(withAction(step, KIND, withKey(email, key, value)));
  const server = (suffix) => problemsAt(context?.problems, KIND, suffix);
  const templates = context?.templates ?? [];
  const fromTemplate = "template" in email;
  const chosen = templates.find((t) => t.key === email.template);

  const written = WRITTEN.get(step.id);
  const setSource = (source) => {
    if (source === "template") {
      // Inline parts would override the template's (its subject too): the template's
      // own content it is, until the person writes a subject of the step's own.
      WRITTEN.set(step.id, { subject: email.subject, html: email.html, text: email.text });
      let next = withKey(withKey(withKey(email, "html", undefined), "text", undefined), "subject", undefined);
      next = withKey(next, "template", templates[0]?.key ?? "");
      onChange(withAction(step, KIND, next));
    } else if (written && (written.html !== undefined || written.text !== undefined)) {
      let next = withKey(email, "template", undefined);
      for (const key of ["subject", "html", "text"]) next = withKey(next, key, written[key]);
      onChange(withAction(step, KIND, next));
    } else {
      const next = withKey(email, "template", undefined);
      onChange(withAction(step, KIND, "html" in next || "text" in next ? next : { ...next, subject: next.subject ?? chosen?.subject ?? "", html: "" }));
    }
  };
  const templateOptions = [
    ...templates.map((t) => [t.key, t.subject ? `${t.key} — ${t.subject}` : t.key]),
    ...(email.template && !chosen ? [[email.template, `${email.template} (unknown)`]] : []),
  ];

  return (
    <Panel title="Send an email" kind={KIND} step={step} onChange={onChange} context={context}>
      <fieldset class="panel-choice">
        <legend>Content</legend>
        <input type="radio" id="panel-source-template" name="panel-source" checked={fromTemplate} onChange={() => setSource("template")} />
        <label for="panel-source-template">A stored template</label>
        <input type="radio" id="panel-source-inline" name="panel-source" checked={!fromTemplate} onChange={() => setSource("inline")} />
        <label for="panel-source-inline">Written here</label>
      </fieldset>
      {fromTemplate && (
        <SelectField
          id="panel-template"
          label="Template"
          value={email.template}
          options={templateOptions.length ? templateOptions : [["", "(no templates yet)"]]}
          onChange={(key) => set("template", key)}
          server={server(".template")}
          hint={templates.length ? undefined : "Make one on the Templates page first."}
        />
      )}
      <TextField
        id="panel-subject"
        label={fromTemplate ? "Subject (leave empty for the template's)" : "Subject"}
        value={email.subject}
        onInput={(text) => set("subject", fromTemplate ? orUndefined(text) : text)}
        check={(text) => (!fromTemplate && !text.trim() ? "a subject is required" : null)}
        server={server(".subject")}
        placeholder={fromTemplate ? chosen?.subject : undefined}
        hint={'Liquid works here, e.g. {{ visitor.first_name | default: "friend" }}'}
      />
      {!fromTemplate && (
        <>
          <TextField
            id="panel-html"
            label="HTML"
            multiline
            rows={8}
            spellcheck={false}
            value={email.html}
            onInput={(text) => set("html", orUndefined(text))}
            check={() => (!email.html && !email.text ? "write the HTML or the text (or both)" : null)}
            server={server(".html")}
          />
          <TextField
            id="panel-text"
            label="Text (made from the HTML when empty)"
            multiline
            rows={5}
            value={email.text}
            onInput={(text) => set("text", orUndefined(text))}
            server={server(".text")}
          />
        </>
      )}
      <TextField id="panel-from" label="From (default: the server's sender)" value={email.from} onInput={(text) => set("from", orUndefined(text))} check={addressProblem} server={server(".from")} placeholder="Ann <ann@example.com>" />
      <TextField id="panel-reply-to" label="Reply-to" value={email.reply_to} onInput={(text) => set("reply_to", orUndefined(text))} check={addressProblem} server={server(".reply_to")} />
      <TextField id="panel-to" label="To (default: the visitor's email)" value={email.to} onInput={(text) => set("to", orUndefined(text))} check={addressProblem} server={server(".to")} />
      <CheckField
        id="panel-transactional"
        label="Transactional"
        checked={email.transactional === true}
        onChange={(on) => set("transactional", on ? true : "transactional" in email ? false : undefined)}
        hint="Sent even to unsubscribed visitors: receipts, password resets. Marketing email to an unsubscribed visitor is skipped."
      />
      <CheckField
        id="panel-track"
        label="Track opens and clicks"
        checked={email.track !== false}
        onChange={(on) => set("track", on ? ("track" in email ? true : undefined) : false)}
      />
      {context?.visitor ? (
        <Preview email={email} context={context} />
      ) : (
        <p class="panel-hint">Choose a visitor under “See it as a visitor” to see this email as they would get it, and to send a test.</p>
      )}
    </Panel>
  );
}

/** The email rendered for the try-out visitor: subject, HTML in a sandboxed frame (no
 * scripts, no same origin), and the text part. */
export function Preview({ email, context }) {
  const [state, setState] = useState({ loading: true });
  const key = JSON.stringify([context.visitor, email]);
  useEffect(() => {
    let current = true;
    setState((s) => ({ ...s, loading: true }));
    const timer = setTimeout(async () => {
      const answer = await renderEmail({ csrf: context.csrf, visitor: context.visitor, email, flowKey: context.flowKey });
      if (current) setState({ loading: false, answer });
    }, 250);
    return () => {
      current = false;
      clearTimeout(timer);
    };
  }, [key]);
  const answer = state.answer;
  return (
    <section class="panel-preview" aria-label={`The email as ${context.visitor.email} would get it`} aria-busy={state.loading ? "true" : "false"}>
      <h3>As {context.visitor.email} would get it</h3>
      {!answer ? (
        <p>Rendering…</p>
      ) : answer.status === 404 ? (
        <p>The preview is not available on this server.</p>
      ) : !answer.ok ? (
        <p class="panel-problem" role="alert">
          The email cannot be rendered: {failure(answer)}
        </p>
      ) : (
        <>
          {answer.data.problems?.length > 0 && (
            <ul class="panel-problem" role="alert">
              {answer.data.problems.map((p, i) => (
                <li key={i}>{p.loc ? `${p.loc}: ${p.msg}` : p.msg}</li>
              ))}
            </ul>
          )}
          <p class="preview-subject">
            <strong>Subject:</strong> <span data-testid="preview-subject">{answer.data.subject}</span>
          </p>
          {answer.data.html != null && answer.data.html !== "" && <iframe class="preview-html" title="The email's HTML, rendered" sandbox="" srcdoc={answer.data.html} />}
          {answer.data.text != null && (
            <details open={!answer.data.html}>
              <summary>Text part</summary>
              <pre class="preview-text">{answer.data.text}</pre>
            </details>
          )}
        </>
      )}
      <SendTest email={email} context={context} />
    </section>
  );
}
