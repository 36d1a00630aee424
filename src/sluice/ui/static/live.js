// Live updates of Sluice's pages: the canvas counts (polled), a session's timeline with
// its header and the activity feed (Server-Sent Events of rows the server rendered),
// and the editors (flows, templates, segments); and what every page needs on a phone
// and with a keyboard or screen reader: the top bar's menu button, confirmations,
// focusable scrolling boxes, announcements. Every value from the server is put into
// the page as text, never as HTML, except the fragments the server rendered (and
// escaped) itself.
"use strict";

const STATS = { email: ["sent", "opened", "clicked", "retrying", "failed"], webhook: ["delivered", "retrying", "failed"] };
const TROUBLE = new Set(["retrying", "failed"]);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
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

// -- every page ----------------------------------------------------------------------

// On a narrow screen the top bar's links, search and log-out fold behind its Menu
// button: the stylesheet hides them while the bar is not `open` (and scripts run: the
// `js` class base.html puts on <html>; without it the bar just wraps).
function foldTopbar(bar) {
  const button = bar.querySelector("[data-menu-button]");
  if (!button) return;
  const show = (open) => {
    bar.classList.toggle("open", open);
    button.setAttribute("aria-expanded", String(open));
  };
  button.addEventListener("click", () => show(!bar.classList.contains("open")));
  bar.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && bar.classList.contains("open")) {
      show(false);
      button.focus();
    }
  });
}

// A form with `data-confirm="question"` is sent only once the question is confirmed
// (Turn off, Stop Flow): one click on the wrong row must not stop anything.
function confirmForms() {
  document.addEventListener("submit", (event) => {
    const question = event.target.dataset?.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });
}

// A box that scrolls on its own (a table in its card, the canvas) and holds nothing
// focusable gets a tab stop, so that keyboards can scroll it too; checked again when
// the window is resized or the page's content changes (a live row, the editor's
// preview), at most once a frame.
const SCROLLERS = ".card, .mail-list";
const FOCUSABLE = "a[href], button, input, select, textarea, [tabindex]";

function reachScrollers() {
  for (const box of document.querySelectorAll(SCROLLERS)) {
    const scrolls = box.scrollWidth > box.clientWidth || box.scrollHeight > box.clientHeight;
    if (scrolls && !box.hasAttribute("tabindex") && !box.querySelector(FOCUSABLE)) {
      box.tabIndex = 0;
      if (!box.hasAttribute("aria-label")) box.setAttribute("aria-label", box.querySelector("h2")?.textContent || "Scrolling box");
      box.setAttribute("role", box.getAttribute("role") || "region");
    }
  }
}

function followScrollers() {
  let pending = false;
  const check = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      reachScrollers();
    });
  };
  reachScrollers();
  window.addEventListener("resize", check);
  new MutationObserver(check).observe(document.querySelector("main") || document.body, { childList: true, subtree: true });
}

// Screen readers hear what a live page added (the `role=status` region in base.html).
function announce(text) {
  const region = document.querySelector("[data-announce]");
  if (region) region.textContent = text.replace(/\s+/g, " ").trim();
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

// A canvas wider than its box (branches side by side, a phone) opens scrolled to its
// middle, where the trigger and the main lane are.
function centreCanvas() {
  for (const box of document.querySelectorAll(".canvas-card")) {
    box.scrollLeft = (box.scrollWidth - box.clientWidth) / 2;
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

// -- a session's timeline and the activity feed ------------------------------------------

// Rows the server rendered (and escaped): the sentences of new timeline entries.
function rowsOf(html) {
  const holder = document.createElement("template");
  holder.innerHTML = html;
  return [...holder.content.querySelectorAll("tr")];
}

function follow(url, name, onMessage) {
  const source = new EventSource(url);
  source.onopen = () => markLive(true);
  source.onerror = () => markLive(false);
  source.addEventListener(name, (message) => onMessage(JSON.parse(message.data)));
}

function followTimeline(table) {
  const body = table.tBodies[0];
  const url = `${table.dataset.stream}?after=${encodeURIComponent(table.dataset.after)}`;
  follow(url, "timeline", (batch) => {
    for (const row of rowsOf(batch.rows)) {
      if (body.querySelector(`[data-entry="${CSS.escape(row.dataset.entry)}"]`)) continue;
      // A step's "Began step" line gives way to the first line that tells what it did.
      if (row.dataset.replaces) body.querySelector(`[data-entry="${CSS.escape(row.dataset.replaces)}"]`)?.remove();
      row.classList.add("fresh");
      body.append(row);
      announce(row.innerText);
    }
    const header = document.querySelector("[data-session-header-holder]");
    if (header && batch.header) header.innerHTML = batch.header;
  });
}

function followActivity(table) {
  const body = table.tBodies[0];
  follow(table.dataset.stream, "rows", (batch) => {
    body.querySelector(".empty-row")?.remove();
    const rows = rowsOf(batch.rows).filter((row) => !body.querySelector(`[data-item="${CSS.escape(row.dataset.item)}"]`));
    for (const row of rows) {
      row.classList.add("fresh");
      if (row.dataset.replaces) body.querySelector(`[data-item="${CSS.escape(row.dataset.replaces)}"]`)?.remove();
    }
    body.prepend(...rows);
    while (body.rows.length > 200) body.deleteRow(-1);
  });
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
    impact: form.querySelector("[data-impact]"),
  });
}

function startTemplateEditor(form) {
  if (!window.SluiceEditor?.attachTemplate) return;
  window.SluiceEditor.attachTemplate(form, {
    checkUrl: form.dataset.checkUrl,
    csrf: form.querySelector("input[name=csrf]").value,
    preview: document.querySelector("[data-email-preview]"),
  });
}

function startSegmentEditor(form) {
  if (!window.SluiceEditor?.attachSegment) return;
  window.SluiceEditor.attachSegment(form, {
    previewUrl: form.dataset.previewUrl,
    csrf: form.querySelector("input[name=csrf]").value,
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const topbar = document.querySelector("[data-topbar]");
  if (topbar) foldTopbar(topbar);
  confirmForms();
  followScrollers();
  centreCanvas();
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
  const templateEditor = document.querySelector("[data-template-editor]");
  if (templateEditor) startTemplateEditor(templateEditor);
  const segmentEditor = document.querySelector("[data-segment-editor]");
  if (segmentEditor) startSegmentEditor(segmentEditor);
});
