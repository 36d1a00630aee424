// The YAML tab: CodeMirror on the flow's text (the setup of src/editor.js), with the
// problems at their lines. Typing calls `onChange(text)`; a text changed from outside
// (a builder edit merged by the server, an undo) replaces the editor's content.
import { useEffect, useRef } from "preact/hooks";
import { EditorView, basicSetup } from "codemirror";
import { yaml } from "@codemirror/lang-yaml";
import { lintGutter, setDiagnostics } from "@codemirror/lint";

function diagnostics(doc, problems) {
  return problems.map((problem) => {
    const line = doc.line(Math.min(Math.max(problem.line || 1, 1), doc.lines));
    return {
      from: line.from,
      to: line.to,
      severity: "error",
      message: problem.loc ? `${problem.loc}: ${problem.msg}` : problem.msg,
    };
  });
}

export function YamlEditor({ text, problems, onChange }) {
  const host = useRef(null);
  const view = useRef(null);
  const change = useRef(onChange);
  change.current = onChange;
  // The texts typed here and told to the app, oldest first: when one comes back as
  // `text`, the editor may be past it already (typing goes on while the app renders),
  // so it is not set again, which would drop what was typed since and move the cursor.
  const typed = useRef([]);

  useEffect(() => {
    view.current = new EditorView({
      doc: text,
      parent: host.current,
      extensions: [
        basicSetup,
        yaml(),
        lintGutter(),
        EditorView.contentAttributes.of({ "aria-label": "Flow definition (YAML)", tabindex: "0" }),
        EditorView.updateListener.of((update) => {
          // Typed by the person (not a text set from outside): tell the app.
          const events = ["input", "delete", "undo", "redo", "move"];
          const byPerson = update.transactions.some((t) => events.some((e) => t.isUserEvent(e)));
          if (update.docChanged && byPerson) {
            const now = update.state.doc.toString();
            typed.current.push(now);
            change.current(now);
          }
        }),
      ],
    });
    return () => view.current.destroy();
  }, []);

  useEffect(() => {
    const current = view.current;
    if (!current) return;
    const echoed = typed.current.indexOf(text);
    typed.current = echoed >= 0 ? typed.current.slice(echoed + 1) : [];
    if (echoed >= 0) return;
    if (current.state.doc.toString() !== text) {
      const cursor = Math.min(current.state.selection.main.head, text.length);
      current.dispatch({
        changes: { from: 0, to: current.state.doc.length, insert: text },
        selection: { anchor: cursor },
      });
    }
  }, [text]);

  useEffect(() => {
    const current = view.current;
    if (current) current.dispatch(setDiagnostics(current.state, diagnostics(current.state.doc, problems || [])));
  }, [problems, text]);

  return <div class="yaml-editor" ref={host} />;
}
