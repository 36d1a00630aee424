// Live updates of Sluice's pages: the canvas counts (polled), a session's timeline and
// the activity feed (Server-Sent Events), and the flow editor. Every value from the
// server is put into the page as text, never as HTML, except the fragments the server
// rendered (and escaped) itself.
"use strict";

const STATUS_KINDS = new Set(["stopped", "resumed", "paused", "completed", "exited", "failed", "retried", "waiting", "wait_ended", "migrated"]);
const STATS = { email: ["sent", "opened", "clicked", "retrying", "failed"], webhook: ["delivered", "retrying", "failed"] };
const TROUBLE = new Set(["retrying", "failed"]);

function when(iso) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function cell(...children) {
  const td = el("td");
  for (const child of children) if (child) td.append(child);
  return td;
}

function link(href, text) {
  const a = el("a", null, text);
  a.href = href;
  return a;
}

function markLive(ok) {
  for (const dot of document.querySelectorAll("[data-live-state]")) {
    dot.classList.toggle("off", !ok);
    dot.textContent = ok ? "live" : "reconnecting…";
  }
}

// -- the canvas ------------------------------------------------------------------------

function renderStats(box, kind, row, trouble) {
  const holder = box.querySelector("[data-stats]");
  if (!holder || !row) return;
  const names = STATS[kind] || ["entered"];
  holder.replaceChildren(
    ...names.map((name) => {
      // Deliveries being retried and failed come from the deliveries (`health`), read
      // on every poll; the rest from the timeline's statistics.
      const value = TROUBLE.has(name) ? trouble[name] || 0 : row[name] || 0;
      const item = el("span", `stat-chip stat-${name}${TROUBLE.has(name) && value ? " bad" : ""}`);
      item.dataset.stat = name;
      item.append(el("b", null, value.toLocaleString()), ` ${name}`);
      return item;
    }),
  );
}

async function refreshCounts(root) {
  let data;
  try {
    const response = await fetch(root.dataset.liveUrl, { credentials: "same-origin" });
    if (!response.ok) return;
    data = await response.json();
  } catch (error) {
    return;
  }
  for (const box of document.querySelectorAll("[data-live-canvas] [data-step]")) {
    const step = box.dataset.step;
    const count = box.querySelector("[data-count]");
    const here = data.here[step] || 0;
    count.dataset.count = String(here);
    count.textContent = here.toLocaleString();
    box.classList.toggle("occupied", here > 0);
    const trouble = data.health[step] || {};
    box.classList.toggle("failing", Boolean(trouble.failing));
    box.title = trouble.failing ? failingTitle(trouble) : "";
    const row = data.stats[step];
    if (row) renderStats(box, row.kind, row, trouble);
  }
  for (const node of document.querySelectorAll("[data-status-count]")) {
    node.textContent = (data.counts[node.dataset.statusCount] || 0).toLocaleString();
  }
  for (const node of document.querySelectorAll("[data-conversion]")) {
    node.textContent = data.conversion_text;
  }
}

function failingTitle(trouble) {
  const parts = [];
  if (trouble.retrying) parts.push(`${trouble.retrying.toLocaleString()} deliveries waiting for another attempt`);
  if (trouble.sessions_failed) parts.push(`${trouble.sessions_failed.toLocaleString()} sessions failed here in the last 24 h`);
  if (!parts.length) parts.push("deliveries failed here in the last 24 h");
  return `Failing: ${parts.join("; ")}`;
}

function followCanvas(root) {
  refreshCounts(root);
  setInterval(() => refreshCounts(root), 2000);
}

// -- the flows list ----------------------------------------------------------------------

const STATUSES = ["active", "waiting", "stopped", "completed", "exited", "failed"];

async function refreshFigures(table) {
  let figures;
  try {
    const response = await fetch(table.dataset.figuresUrl, { credentials: "same-origin" });
    if (!response.ok) return;
    figures = await response.json();
  } catch (error) {
    return;
  }
  for (const row of table.querySelectorAll("tr[data-flow]")) {
    const flow = figures[row.dataset.flow];
    if (!flow) continue;
    const chips = STATUSES.filter((s) => flow.counts[s]).map((s) =>
      el("span", `chip chip-${s}`, `${flow.counts[s].toLocaleString()} ${s}`),
    );
    row.querySelector('[data-figure="counts"]').replaceChildren(...(chips.length ? chips : [el("span", "muted", "none yet")]));
    row.querySelector('[data-figure="entered_24h"]').textContent = flow.entered_24h.toLocaleString();
    row.querySelector('[data-figure="conversion"]').textContent = flow.conversion_text;
    renderHealth(row.querySelector('[data-figure="health"]'), flow.health, row.dataset.flow);
  }
}

function renderHealth(holder, health, key) {
  const { failing_steps: steps, failed_24h: failed } = health;
  holder.classList.toggle("bad", Boolean(steps || failed));
  if (!steps && !failed) {
    holder.replaceChildren(el("span", "muted", "ok"));
    return;
  }
  const parts = [];
  if (steps) parts.push(`${steps.toLocaleString()} failing step${steps === 1 ? "" : "s"}`);
  if (failed) parts.push(`${failed.toLocaleString()} failed (24 h)`);
  holder.replaceChildren(link(`/flows/${encodeURIComponent(key)}`, parts.join(" · ")));
}

function followFigures(table) {
  refreshFigures(table);
  setInterval(() => refreshFigures(table), 5000);
}

// -- a session's timeline --------------------------------------------------------------

async function refreshHeader() {
  const holder = document.querySelector("[data-header-url]");
  if (!holder) return;
  const response = await fetch(holder.dataset.headerUrl, { credentials: "same-origin" });
  if (response.ok) holder.innerHTML = await response.text();
}

function timelineRow(id, entry) {
  const tr = el("tr", "fresh");
  tr.dataset.entry = id;
  tr.append(
    cell(el("span", null, when(entry.at))),
    cell(el("code", null, entry.step || "")),
    cell(el("span", `kind kind-${entry.kind}`, entry.kind)),
    cell(entry.data && Object.keys(entry.data).length ? el("code", null, JSON.stringify(entry.data)) : null),
  );
  tr.children[0].className = "nowrap muted";
  tr.children[3].className = "data";
  return tr;
}

function followTimeline(table) {
  const body = table.tBodies[0];
  const url = `${table.dataset.stream}?after=${encodeURIComponent(table.dataset.after)}`;
  const source = new EventSource(url);
  source.onopen = () => markLive(true);
  source.onerror = () => markLive(false);
  source.addEventListener("timeline", (message) => {
    if (body.querySelector(`[data-entry="${CSS.escape(message.lastEventId)}"]`)) return;
    const entry = JSON.parse(message.data);
    body.append(timelineRow(message.lastEventId, entry));
    if (STATUS_KINDS.has(entry.kind)) refreshHeader();
  });
}

// -- the activity feed -----------------------------------------------------------------

function activityRow(kind, item) {
  const tr = el("tr", kind === "event" ? "fresh feed-event" : "fresh");
  const visitor = item.email ? link(`/visitors/${encodeURIComponent(item.email)}`, item.email) : null;
  if (kind === "event") {
    tr.append(
      cell(el("span", null, when(item.accepted_at))),
      cell(visitor),
      cell(el("span", "kind kind-event", item.type)),
      cell(),
      cell(el("code", null, JSON.stringify(item.details))),
    );
  } else {
    const where = cell(link(`/sessions/${item.session_id}`, `#${item.session_id}`), ` ${item.flow || ""}`);
    if (item.step) where.append(" · ", el("code", null, item.step));
    where.className = "nowrap";
    tr.append(
      cell(el("span", null, when(item.at))),
      cell(visitor),
      cell(el("span", `kind kind-${item.kind}`, item.kind)),
      where,
      cell(item.data && Object.keys(item.data).length ? el("code", null, JSON.stringify(item.data)) : null),
    );
  }
  tr.children[0].className = "nowrap muted";
  tr.children[4].className = "data";
  return tr;
}

function followActivity(table) {
  const body = table.tBodies[0];
  const source = new EventSource(table.dataset.stream);
  source.onopen = () => markLive(true);
  source.onerror = () => markLive(false);
  const add = (kind) => (message) => {
    body.querySelector(".empty-row")?.remove();
    body.prepend(activityRow(kind, JSON.parse(message.data)));
    while (body.rows.length > 200) body.deleteRow(-1);
  };
  source.addEventListener("event", add("event"));
  source.addEventListener("timeline", add("timeline"));
}

// -- the editor ------------------------------------------------------------------------

function startEditor(form) {
  if (!window.SluiceEditor) return;
  window.SluiceEditor.attach(form.querySelector("textarea"), {
    validateUrl: form.dataset.checkUrl,
    csrf: form.querySelector("input[name=csrf]").value,
    preview: document.querySelector("[data-preview]"),
    status: form.querySelector("[data-editor-status]"),
    list: form.querySelector("[data-problems]"),
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const canvas = document.querySelector("[data-live-url]");
  if (canvas) followCanvas(canvas);
  const figures = document.querySelector("[data-figures-url]");
  if (figures) followFigures(figures);
  const timeline = document.querySelector("[data-timeline]");
  if (timeline) followTimeline(timeline);
  const activity = document.querySelector("[data-activity]");
  if (activity) followActivity(activity);
  const editor = document.querySelector("[data-editor]");
  if (editor) startEditor(editor);
});
