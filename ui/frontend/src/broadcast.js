// The broadcast pages (templates/broadcast_new.html, broadcast.html). The compose form
// and a draft's send form show the fields of the choices made (the email written
// there or a template; now, at a date and time, or at a time of day in each visitor's
// zone) and name their button Send or Schedule. A broadcast's page follows its
// progress: while it moves it asks /ui/broadcasts/{id}/progress every few seconds
// ({status, moving, cancellable, sentence, figures: {name: N}, last_error}) and puts the
// numbers in place, as text; its sentence sits in a polite live region, so screen
// readers hear it when it changes. Nothing is fetched from anywhere else.

const numbers = new Intl.NumberFormat("en");
const GROUPS = { content: "contentGroup", when: "whenGroup" };

/** Show, in `form`, the groups of fields of the options chosen; name its button. */
export function followChoices(form) {
  const chosen = (name) =>
    form.querySelector(`input[name=${name}]:checked`)?.value ??
    form.querySelector(`input[type=hidden][name=${name}]`)?.value;
  const update = () => {
    for (const [name, key] of Object.entries(GROUPS)) {
      const value = chosen(name);
      if (value === undefined) continue;
      for (const group of form.querySelectorAll(`[data-${name}-group]`)) {
        group.hidden = group.dataset[key] !== value;
      }
    }
    const button = form.querySelector("[data-send-button]");
    const when = chosen("when");
    if (button && when) button.textContent = when === "now" ? "Send" : "Schedule";
  };
  form.addEventListener("change", update);
  update();
}

/** Put an answer of the progress endpoint in place on the page `doc`. */
export function applyProgress(doc, answer) {
  for (const node of doc.querySelectorAll("[data-stat]")) {
    const value = answer.figures[node.dataset.stat];
    if (value !== undefined) node.textContent = numbers.format(value);
  }
  const sentence = doc.querySelector("[data-progress-sentence]");
  // Only a change is said again by screen readers: leave the same sentence alone.
  if (sentence && sentence.textContent !== answer.sentence) sentence.textContent = answer.sentence;
  const badge = doc.querySelector("[data-broadcast-status]");
  if (badge) {
    badge.textContent = answer.status;
    badge.className = `badge badge-${answer.status}`;
  }
  const cancel = doc.querySelector("[data-cancel]");
  if (cancel) cancel.hidden = !answer.cancellable;
  const outbox = doc.querySelector("[data-outbox-note]");
  if (outbox) outbox.hidden = !answer.figures.outbox;
  const error = doc.querySelector("[data-last-error]");
  if (error) {
    error.hidden = !answer.last_error;
    error.querySelector("[data-last-error-text]").textContent = answer.last_error || "";
  }
}

function markState(doc, ok, moving) {
  const dot = doc.querySelector("[data-live-state]");
  if (!dot) return;
  if (!moving) {
    dot.remove();
    return;
  }
  dot.classList.toggle("off", !ok);
  dot.textContent = ok ? "updating" : "reconnecting…";
}

/**
 * Ask `url` for the progress every `every` ms, one question at a time, and show each
 * answer on `doc` until one says the broadcast no longer moves; resolves with it.
 */
export async function followProgress(doc, url, { every = 3000, fetch = globalThis.fetch } = {}) {
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, every));
    let answer = null;
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (response.ok) answer = await response.json();
    } catch (error) {
      // Offline or the server restarting: asked again at the next turn.
    }
    if (answer === null) {
      markState(doc, false, true);
      continue;
    }
    applyProgress(doc, answer);
    markState(doc, true, answer.moving);
    if (!answer.moving) return answer;
  }
}
