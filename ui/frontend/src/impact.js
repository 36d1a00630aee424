// What saving an edit does to a flow's live sessions, as the server reports it
// (`impact` in POST /api/flows/{key}/preview and /ui/flows/{key}/check; docs/api.md,
// "Impact of an edit"). The sentences come from the server (impact.py), so the YAML
// editor, the builder and the CLI say the same thing; this module only lays them out.

/** Whether saving needs the person's confirmation: it sends something at once. */
export function sendsAtOnce(impact) {
  return Boolean(impact && impact.sends_at_once && impact.sends_at_once.sessions > 0);
}

/**
 * The confirmation question before saving, or null when nothing is sent at once:
 * "Saving wakes 4 sessions at once, which then send 3 emails and 0 webhooks right away."
 */
export function confirmation(impact) {
  return sendsAtOnce(impact) ? impact.warning : null;
}

/**
 * Fill `element` with the impact (the same markup as the server's _impact.html): the
 * warning, when saving sends at once, then one list item per sentence. Text only, never
 * HTML: the sentences quote the author's subjects and conditions.
 */
export function renderImpact(element, impact) {
  const doc = element.ownerDocument;
  const parts = [];
  if (confirmation(impact)) {
    const warning = doc.createElement("p");
    warning.className = "impact-warning";
    const strong = doc.createElement("strong");
    strong.textContent = "Sends at once.";
    warning.append(strong, ` ${impact.warning}`);
    parts.push(warning);
  }
  const list = doc.createElement("ul");
  list.className = "impact-lines";
  for (const line of (impact && impact.summary) || []) {
    const item = doc.createElement("li");
    item.textContent = line;
    list.append(item);
  }
  parts.push(list);
  element.replaceChildren(...parts);
  element.classList.toggle("impact-sends", sendsAtOnce(impact));
}
