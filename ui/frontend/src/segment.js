// The segment editor's live count (templates/segment_edit.html): as the YAML is typed,
// after `delay` ms of quiet, the server is asked how many visitors the typed rules hold
// now (POST /ui/segments/…/preview with the text as the body, the UI's cookie and
// X-CSRF-Token; it answers {members, problems: [{loc, msg, line}]}), and the page says
// so in its polite live region, or lists the problems. Every preview reads every
// visitor, so one request at a time: text typed meanwhile is asked about when it ends.

const numbers = new Intl.NumberFormat("en");

function plural(n, one, many) {
  return `${numbers.format(n)} ${n === 1 ? one : many}`;
}

/** What the live region says: "1,204 visitors match now." or why there is no count. */
export function countSentence(answer) {
  const problems = answer.problems.length;
  if (problems) {
    return `${plural(problems, "problem", "problems")}: fix ${problems === 1 ? "it" : "them"} to count the visitors who match.`;
  }
  return `${plural(answer.members, "visitor matches", "visitors match")} now.`;
}

/**
 * Asks `url` about the text given to `changed(text)` once it has been left alone for
 * `delay` ms, and calls `onAnswer(answer)` with the answer for the text as it is now
 * (an answer for an older text is dropped: a newer question follows).
 */
export function livePreview({ url, csrf, onAnswer, delay = 400, fetch = globalThis.fetch }) {
  let latest = null;
  let timer = null;
  let asking = false;
  let again = false;

  async function ask(text) {
    asking = true;
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": "text/plain", "X-CSRF-Token": csrf },
        body: text,
        credentials: "same-origin",
      });
      if (response.ok) {
        const answer = await response.json();
        if (text === latest) onAnswer(answer);
      }
    } catch (error) {
      // Offline or the server restarting: the next change asks again.
    } finally {
      asking = false;
    }
    if (again) {
      again = false;
      ask(latest);
    }
  }

  return {
    changed(text) {
      latest = text;
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (asking) again = true;
        else ask(latest);
      }, delay);
    },
  };
}

/** Show an answer in the editor's form: its live region, its badge, its problem list. */
export function showAnswer(form, answer) {
  form.querySelector("[data-segment-count]").textContent = countSentence(answer);
  const problems = answer.problems;
  const status = form.querySelector("[data-editor-status]");
  status.textContent = problems.length ? plural(problems.length, "problem", "problems") : "Valid";
  status.className = problems.length ? "badge badge-failed" : "badge badge-on";
  const list = form.querySelector("[data-problems]");
  const doc = form.ownerDocument;
  list.replaceChildren(
    ...problems.map((problem) => {
      const item = doc.createElement("li");
      const line = doc.createElement("span");
      line.className = "muted";
      line.textContent = `line ${problem.line}`;
      const loc = doc.createElement("code");
      loc.textContent = problem.loc || "segment";
      item.append(line, " ", loc, ` ${problem.msg}`);
      return item;
    }),
  );
  list.hidden = problems.length === 0;
}
