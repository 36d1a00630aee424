// The builder's calls to the server: the UI's document endpoint, and the native API
// (/api) that everyone else uses, with the UI's cookie and its CSRF token
// (notes: builder-design.md "Server endpoints").

/** A refused or failed request: `status` (0 when the server could not be reached),
 * `message`, and for a 422 `problems` [{loc, msg}]. */
export class RequestError extends Error {
  constructor(status, message, problems = []) {
    super(message);
    this.status = status;
    this.problems = problems;
  }
}

/** The calls, for the page whose CSRF token is `csrf`. `fetchImpl` for tests. */
export function client(csrf, fetchImpl = (...args) => fetch(...args)) {
  async function call(method, url, { json, yaml, ifMatch } = {}) {
    const headers = { "X-CSRF-Token": csrf, Accept: "application/json" };
    if (ifMatch !== undefined) headers["If-Match"] = ifMatch;
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (yaml !== undefined) {
      headers["Content-Type"] = "application/yaml";
      body = yaml;
    }
    let response;
    try {
      response = await fetchImpl(url, { method, headers, body, credentials: "same-origin" });
    } catch (error) {
      throw new RequestError(0, "The server could not be reached.");
    }
    const answer = await response.json().catch(() => null);
    if (!response.ok) {
      const detail = answer?.detail;
      const problems = Array.isArray(detail) ? detail : [];
      let message = `${response.status} ${response.statusText}`;
      if (typeof detail === "string") message = detail;
      else if (problems.length) message = `${problems.length} problem${problems.length === 1 ? "" : "s"}`;
      throw new RequestError(response.status, message, problems);
    }
    return answer;
  }
  const flow = (key) => `/api/flows/${encodeURIComponent(key)}`;
  const withNote = (url, note) => (note ? `${url}?note=${encodeURIComponent(note)}` : url);

  return {
    /** Merge `document` into `text` (or, with `document` null, read `text`):
     * {text, document|null, problems: [{loc, msg, line}]}. `key` null: a new flow. */
    document: (key, text, document) =>
      call("POST", `/ui/flows/${key ? encodeURIComponent(key) : "_new"}/document`, { json: { text, document } }),
    /** What saving `text` would do: {problems, blast_radius, impact?}. */
    preview: (key, text) => call("POST", `${flow(key)}/preview`, { yaml: text }),
    /** Save `text` as the flow's new version (the flow is created when new). With
     * `basedOn` (the version the text was made from), refused with a 412 when another
     * version has been saved meanwhile (If-Match). */
    save: (key, text, note, basedOn) =>
      call("PUT", withNote(flow(key), note), { yaml: text, ifMatch: basedOn ? `"${basedOn}"` : undefined }),
    saveDraft: (key, text) => call("PUT", `${flow(key)}/draft`, { yaml: text }),
    /** Publish the draft; with `basedOn`, refused (412) as `save` is. */
    publishDraft: (key, note, basedOn) =>
      call("POST", withNote(`${flow(key)}/draft/publish`, note), { ifMatch: basedOn ? `"${basedOn}"` : undefined }),
    discardDraft: (key) => call("DELETE", `${flow(key)}/draft`),
  };
}
