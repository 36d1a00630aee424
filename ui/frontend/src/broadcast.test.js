import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { applyProgress, followChoices, followProgress } from "./broadcast.js";

const PAGE = `
  <h1>News <span class="badge badge-scheduled" data-broadcast-status>scheduled</span></h1>
  <form data-cancel><button>Cancel broadcast</button></form>
  <section data-progress data-progress-url="/ui/broadcasts/7/progress">
    <span class="live-dot" data-live-state>updating</span>
    <p role="status" aria-live="polite" data-progress-sentence>Scheduled for 2026-03-03 09:00 UTC: nothing is queued yet.</p>
    <dl><dt>Queued</dt><dd data-stat="queued">0</dd><dt>Sent</dt><dd data-stat="sent">0</dd></dl>
    <p data-outbox-note hidden>Of those sent, <span data-stat="outbox">0</span> are kept in the outbox.</p>
    <p data-last-error hidden>Last: <span data-last-error-text></span></p>
  </section>
  <dl><dt>Opened</dt><dd data-stat="opened">0</dd></dl>`;

function answer(overrides = {}) {
  return {
    status: "sending",
    moving: true,
    cancellable: true,
    sentence: "Sending: 1,500 queued so far, of an audience of 12,000; 700 sent.",
    figures: { queued: 1500, sent: 700, outbox: 0, opened: 3 },
    last_error: null,
    ...overrides,
  };
}

describe("a broadcast's progress", () => {
  beforeEach(() => {
    document.body.innerHTML = PAGE;
  });

  it("puts the numbers, the status and the sentence in place as text", () => {
    applyProgress(document, answer({ last_error: "c9@example.com: <b>undefined</b>" }));
    expect(document.querySelector('[data-stat="queued"]').textContent).toBe("1,500");
    expect(document.querySelector('[data-stat="sent"]').textContent).toBe("700");
    expect(document.querySelector('[data-stat="opened"]').textContent).toBe("3");
    const badge = document.querySelector("[data-broadcast-status]");
    expect(badge.textContent).toBe("sending");
    expect(badge.className).toBe("badge badge-sending");
    expect(document.querySelector("[data-progress-sentence]").textContent).toMatch(/^Sending: 1,500 queued/);
    const error = document.querySelector("[data-last-error]");
    expect(error.hidden).toBe(false);
    expect(error.querySelector("b")).toBeNull(); // text, never markup
    expect(error.textContent).toContain("<b>undefined</b>");
  });

  it("hides Cancel once nothing is left to stop, and shows the outbox's share", () => {
    applyProgress(document, answer({ status: "sent", moving: false, cancellable: false, figures: { queued: 2, sent: 2, outbox: 2 } }));
    expect(document.querySelector("[data-cancel]").hidden).toBe(true);
    expect(document.querySelector("[data-outbox-note]").hidden).toBe(false);
    expect(document.querySelector('[data-stat="outbox"]').textContent).toBe("2");
  });

  it("leaves the live region alone while its sentence stays the same", () => {
    const sentence = document.querySelector("[data-progress-sentence]");
    const changes = [];
    new MutationObserver((records) => changes.push(...records)).observe(sentence, { childList: true, characterData: true, subtree: true });
    applyProgress(document, answer({ sentence: sentence.textContent }));
    return Promise.resolve().then(() => expect(changes).toEqual([]));
  });
});

describe("asking for the progress", () => {
  beforeEach(() => {
    vi.useFakeTimers();
    document.body.innerHTML = PAGE;
  });
  afterEach(() => vi.useRealTimers());

  it("asks every few seconds, one question at a time, until it no longer moves", async () => {
    const answers = [answer(), answer({ status: "sent", moving: false, cancellable: false, sentence: "Sent: 2 queued, 2 sent." })];
    const pending = [];
    const fetch = vi.fn(() => new Promise((resolve) => pending.push(resolve)));
    const done = followProgress(document, "/ui/broadcasts/7/progress", { every: 3000, fetch });
    await vi.advanceTimersByTimeAsync(2999);
    expect(fetch).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(fetch.mock.calls[0][0]).toBe("/ui/broadcasts/7/progress");
    await vi.advanceTimersByTimeAsync(10_000);
    expect(fetch).toHaveBeenCalledTimes(1); // still waiting for the first answer
    pending[0]({ ok: true, json: async () => answers[0] });
    await vi.advanceTimersByTimeAsync(3000);
    expect(fetch).toHaveBeenCalledTimes(2);
    expect(document.querySelector("[data-broadcast-status]").textContent).toBe("sending");
    pending[1]({ ok: true, json: async () => answers[1] });
    expect((await done).status).toBe("sent");
    expect(document.querySelector("[data-live-state]")).toBeNull();
    await vi.advanceTimersByTimeAsync(30_000);
    expect(fetch).toHaveBeenCalledTimes(2);
  });

  it("says it is reconnecting when an answer does not come, and asks again", async () => {
    const fetch = vi.fn(async () => {
      throw new TypeError("offline");
    });
    followProgress(document, "/p", { every: 1000, fetch });
    await vi.advanceTimersByTimeAsync(1000);
    expect(document.querySelector("[data-live-state]").textContent).toBe("reconnecting…");
    await vi.advanceTimersByTimeAsync(1000);
    expect(fetch).toHaveBeenCalledTimes(2);
  });
});

describe("the compose form's choices", () => {
  it("shows the fields of the options chosen and names the button", () => {
    document.body.innerHTML = `
      <form data-compose>
        <input type="radio" name="content" value="inline" checked><input type="radio" name="content" value="template">
        <div data-content-group="template"></div><div data-content-group="inline"></div>
        <input type="radio" name="when" value="now" checked><input type="radio" name="when" value="at"><input type="radio" name="when" value="local">
        <div data-when-group="at"></div><div data-when-group="local"></div>
        <button data-send-button>Send</button>
      </form>`;
    const form = document.querySelector("form");
    followChoices(form);
    const group = (name, value) => form.querySelector(`[data-${name}-group="${value}"]`);
    expect([group("content", "inline").hidden, group("content", "template").hidden]).toEqual([false, true]);
    expect([group("when", "at").hidden, group("when", "local").hidden]).toEqual([true, true]);
    form.querySelector('input[value="template"]').click();
    form.querySelector('input[value="local"]').click();
    expect([group("content", "inline").hidden, group("content", "template").hidden]).toEqual([true, false]);
    expect([group("when", "at").hidden, group("when", "local").hidden]).toEqual([true, false]);
    expect(form.querySelector("[data-send-button]").textContent).toBe("Schedule");
  });

  it("reads a draft's fixed choice from its hidden field", () => {
    document.body.innerHTML = `<form data-compose><input type="hidden" name="when" value="local"><button data-send-button>Send</button></form>`;
    followChoices(document.querySelector("form"));
    expect(document.querySelector("[data-send-button]").textContent).toBe("Schedule");
  });
});
