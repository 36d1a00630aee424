// The flow definition editor: CodeMirror 6 over a <textarea>, validated against the
// server as you type. The server answers {problems: [{loc, msg, line}], canvas: HTML,
// impact}; each problem is shown at its line, the canvas preview is replaced by the one
// of the typed definition (rendered and escaped by the server), and the panel beside
// the Save button says what saving would do to the flow's live sessions.
import { EditorView, basicSetup } from "codemirror";
import { yaml } from "@codemirror/lang-yaml";
import { linter, lintGutter, setDiagnostics } from "@codemirror/lint";
import { renderImpact } from "./impact.js";
import { livePreview, showAnswer } from "./segment.js";

function diagnosticsFor(doc, problems) {
  return problems.map((problem) => {
    const line = doc.line(Math.min(Math.max(problem.line || 1, 1), doc.lines));
    return {
      from: line.from,
      to: Math.max(line.to, line.from),
      severity: "error",
      message: problem.loc ? `${problem.loc}: ${problem.msg}` : problem.msg,
    };
  });
}

function showList(list, problems) {
  list.replaceChildren(
    ...problems.map((problem) => {
      const item = document.createElement("li");
      const line = document.createElement("span");
      line.className = "muted";
      line.textContent = `line ${problem.line}`;
      const loc = document.createElement("code");
      loc.textContent = problem.loc;
      item.append(line, " ", loc, ` ${problem.msg}`);
      return item;
    }),
  );
  list.hidden = problems.length === 0;
}

function attach(textarea, { validateUrl, csrf, preview, status, list, impact }) {
  const report = (problems) => {
    if (list) showList(list, problems);
    if (!status) return;
    status.textContent = problems.length
      ? `${problems.length} problem${problems.length === 1 ? "" : "s"}`
      : "Valid";
    status.className = problems.length ? "badge badge-failed" : "badge badge-on";
  };
  const validate = async (view) => {
    const text = view.state.doc.toString();
    let answer;
    try {
      const response = await fetch(validateUrl, {
        method: "POST",
        headers: { "Content-Type": "text/plain", "X-CSRF-Token": csrf },
        body: text,
        credentials: "same-origin",
      });
      if (!response.ok) return [];
      answer = await response.json();
    } catch (error) {
      return [];
    }
    if (view.state.doc.toString() !== text) return [];
    if (preview && typeof answer.canvas === "string") preview.innerHTML = answer.canvas;
    if (impact && answer.impact) renderImpact(impact, answer.impact);
    report(answer.problems);
    return diagnosticsFor(view.state.doc, answer.problems);
  };
  const view = new EditorView({
    doc: textarea.value,
    extensions: [
      basicSetup,
      yaml(),
      lintGutter(),
      linter(validate, { delay: 300 }),
      // The editable area is named as the text area was, and an explicit tab stop (it
      // is one already, as contenteditable) tells checkers such as axe-core that its
      // scrolling box can be reached by keyboard.
      EditorView.contentAttributes.of({
        "aria-label": textarea.getAttribute("aria-label") || "Definition",
        tabindex: "0",
      }),
      EditorView.updateListener.of((update) => {
        if (update.docChanged) textarea.value = update.state.doc.toString();
      }),
    ],
  });
  textarea.hidden = true;
  textarea.after(view.dom);
  return view;
}

window.SluiceEditor = { attach };

// -- the template editor -----------------------------------------------------------------
// Subject (an input), HTML and text (CodeMirror each) of an email template, checked as
// you type against /ui/templates/check, which answers the problems of each part
// ({loc: "subject"|"html"|"text"|…, msg, line}) and the email rendered for the sample
// visitor ({subject, html, text}), shown in a sandboxed frame and as text.

function attachTemplate(form, { checkUrl, csrf, preview }) {
  const status = form.querySelector("[data-editor-status]");
  const list = form.querySelector("[data-problems]");
  const subject = form.querySelector("[data-part=subject]");
  const views = {};
  let timer = null;
  let asked = 0;
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(check, 300);
  };
  for (const textarea of form.querySelectorAll("textarea[data-part]")) {
    const view = new EditorView({
      doc: textarea.value,
      extensions: [
        basicSetup,
        lintGutter(),
        EditorView.lineWrapping,
        EditorView.contentAttributes.of({
          "aria-label": textarea.getAttribute("aria-label"),
          tabindex: "0",
        }),
        EditorView.updateListener.of((update) => {
          if (!update.docChanged) return;
          textarea.value = update.state.doc.toString();
          schedule();
        }),
      ],
    });
    view.dom.dataset.part = textarea.dataset.part;
    textarea.hidden = true;
    textarea.after(view.dom);
    views[textarea.dataset.part] = view;
  }
  subject.addEventListener("input", schedule);
  const sampleEmail = preview.querySelector("[data-sample-email]");
  const sampleFields = preview.querySelector("[data-sample-fields]");
  sampleEmail.addEventListener("input", schedule);
  sampleFields.addEventListener("input", schedule);

  const show = (answer) => {
    const problems = answer.problems;
    for (const [part, view] of Object.entries(views)) {
      const mine = problems.filter((problem) => problem.loc === part);
      view.dispatch(setDiagnostics(view.state, diagnosticsFor(view.state.doc, mine)));
    }
    const subjectProblem = problems.find((problem) => problem.loc === "subject");
    subject.setAttribute("aria-invalid", subjectProblem ? "true" : "false");
    list.replaceChildren(
      ...problems.map((problem) => {
        const item = document.createElement("li");
        const loc = document.createElement("code");
        loc.textContent = problem.loc || "template";
        item.append(loc, ` ${problem.msg}`);
        return item;
      }),
    );
    list.hidden = problems.length === 0;
    status.textContent = problems.length
      ? `${problems.length} problem${problems.length === 1 ? "" : "s"}`
      : "Valid";
    status.className = problems.length ? "badge badge-failed" : "badge badge-on";
    preview.querySelector("[data-preview-who]").textContent = answer.who;
    const email = answer.email;
    preview.querySelector("[data-preview-email]").hidden = !email;
    preview.querySelector("[data-preview-none]").hidden = Boolean(email);
    if (!email) return;
    preview.querySelector("[data-preview-subject]").textContent = email.subject;
    const frame = preview.querySelector("[data-preview-html]");
    // Setting srcdoc reloads the frame: only when the HTML changed, so that typing in
    // the subject does not make the email blink.
    if (frame.srcdoc !== (email.html || "")) frame.srcdoc = email.html || "";
    preview.querySelector("[data-preview-text]").textContent = email.text || "";
  };

  async function check() {
    let fields = null;
    try {
      fields = sampleFields.value.trim() ? JSON.parse(sampleFields.value) : null;
      sampleFields.setAttribute("aria-invalid", "false");
    } catch (error) {
      sampleFields.setAttribute("aria-invalid", "true");
    }
    const ask = ++asked;
    const body = {
      subject: subject.value,
      html: form.querySelector("textarea[data-part=html]").value,
      text: form.querySelector("textarea[data-part=text]").value,
      visitor_email: sampleEmail.value,
      fields,
    };
    try {
      const response = await fetch(checkUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify(body),
        credentials: "same-origin",
      });
      if (!response.ok || ask !== asked) return;
      show(await response.json());
    } catch (error) {
      // Offline or the server restarting: the next keystroke asks again.
    }
  }
  return { check };
}

window.SluiceEditor.attachTemplate = attachTemplate;

// -- the segment editor ------------------------------------------------------------------
// The YAML of a segment in CodeMirror; as it is typed, segment.js asks how many visitors
// the rules hold now and says so (or lists the problems, each marked at its line).

function attachSegment(form, { previewUrl, csrf }) {
  const textarea = form.querySelector("textarea");
  let view = null;
  const preview = livePreview({
    url: previewUrl,
    csrf,
    onAnswer: (answer) => {
      showAnswer(form, answer);
      view.dispatch(setDiagnostics(view.state, diagnosticsFor(view.state.doc, answer.problems)));
    },
  });
  view = new EditorView({
    doc: textarea.value,
    extensions: [
      basicSetup,
      yaml(),
      lintGutter(),
      EditorView.contentAttributes.of({
        "aria-label": textarea.getAttribute("aria-label"),
        "aria-describedby": textarea.getAttribute("aria-describedby"),
        tabindex: "0",
      }),
      EditorView.updateListener.of((update) => {
        if (!update.docChanged) return;
        textarea.value = update.state.doc.toString();
        preview.changed(textarea.value);
      }),
    ],
  });
  textarea.hidden = true;
  textarea.after(view.dom);
  return view;
}

window.SluiceEditor.attachSegment = attachSegment;
