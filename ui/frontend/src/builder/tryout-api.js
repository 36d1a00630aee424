// The calls "See it as a visitor" makes to the native API (docs/api.md), with the UI's
// cookie and CSRF header, as every builder call is. Each answers {ok, status, data}; a
// network failure answers {ok: false, status: 0, data: {detail}} so the panel can say so.

/** A JSON request; `data` is the parsed answer (or null when it is not JSON). */
export async function callJson(url, { method = "GET", body, csrf } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (csrf) headers["X-CSRF-Token"] = csrf;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch (error) {
    return { ok: false, status: 0, data: { detail: `the server cannot be reached (${error.message})` } };
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  return { ok: response.ok, status: response.status, data };
}

/** How a try-out visitor is named in a request: a real one by their address (the
 * server reads everything stored about them), a made-up one whole. */
export function visitorPart(visitor) {
  if (visitor.real) return { visitor_email: visitor.email };
  return { visitor: scriptVisitor(visitor) };
}

/** The visitor as a simulation script gives it: {email, fields, tags}. */
export function scriptVisitor(visitor) {
  return { email: visitor.email, fields: visitor.fields ?? {}, tags: visitor.tags ?? [] };
}

/** Whether `key` names a saved flow (the page of a new flow says `_new`). */
const saved = (key) => Boolean(key) && key !== "_new";

/** POST /api/emails/render: an email step's value rendered for the visitor →
 * {subject, html, text, problems}. */
export function renderEmail({ csrf, visitor, email, flowKey }) {
  const body = { ...visitorPart(visitor), email };
  if (saved(flowKey)) body.flow = flowKey;
  return callJson("/api/emails/render", { method: "POST", body, csrf });
}

/** POST /api/emails/test: the email rendered for the visitor, sent to `to`. */
export function sendTest({ csrf, to, visitor, email, flowKey }) {
  const body = { to, ...visitorPart(visitor), email };
  if (saved(flowKey)) body.flow = flowKey;
  return callJson("/api/emails/test", { method: "POST", body, csrf });
}

/** POST /api/flows/{key}/simulate with the draft document → {visitor, sessions}. */
export function simulate({ csrf, flowKey, definition, visitor, events }) {
  return callJson(`/api/flows/${encodeURIComponent(flowKey)}/simulate`, {
    method: "POST",
    body: { visitor: scriptVisitor(visitor), events, definition },
    csrf,
  });
}

/** GET /api/visitors?q=&limit=: visitors the search finds (as the UI's search). */
export function searchVisitors({ csrf, q, limit = 10 }) {
  const query = new URLSearchParams({ q, limit: String(limit) });
  return callJson(`/api/visitors?${query}`, { csrf });
}

/** A message for a failed call: the server's problems, or what went wrong. */
export function failure({ status, data }) {
  if (Array.isArray(data?.detail)) {
    return data.detail.map((p) => (p.loc ? `${Array.isArray(p.loc) ? p.loc.join(".") : p.loc}: ${p.msg}` : p.msg)).join("; ");
  }
  if (typeof data?.detail === "string") return data.detail;
  return status ? `the server answered ${status}` : "the server cannot be reached";
}
