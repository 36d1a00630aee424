// The flow definition editor: CodeMirror 6 over a <textarea>, validated against the
// server as you type. The server answers {problems: [{loc, msg, line}], canvas: HTML};
// each problem is shown at its line, and the canvas preview is replaced by the one of
// the typed definition (rendered and escaped by the server).
import { EditorView, basicSetup } from "codemirror";
import { yaml } from "@codemirror/lang-yaml";
import { linter, lintGutter } from "@codemirror/lint";

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

function attach(textarea, { validateUrl, csrf, preview, status, list }) {
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
