// The checks the panels make as a person types, the same rules as the server's
// (src/sluice/definitions/durations.py, problems.py): each answers a message saying
// what to write instead, or null when the value is fine. The server checks again on
// every edit; these only spare the round trip for the commonest slips.

const UNIT_SECONDS = { w: 604800, d: 86400, h: 3600, m: 60, s: 1 };
const MAX_SECONDS = 3650 * 86400; // limits.MAX_DURATION: 10 years
const COMPACT = /^(-?)(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;
const ISO = /^(-?)P(?:(\d+)W)?(?:(\d+)D)?(?:T(?=\d)(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/;
const UNIT_WORDS = {
  s: ["s", "sec", "secs", "second", "seconds"],
  m: ["m", "min", "mins", "minute", "minutes"],
  h: ["h", "hr", "hrs", "hour", "hours"],
  d: ["d", "day", "days"],
  w: ["w", "wk", "wks", "week", "weeks"],
};
const UNIT_BY_WORD = Object.fromEntries(
  Object.entries(UNIT_WORDS).flatMap(([unit, words]) => words.map((word) => [word, unit])),
);

/** Seconds of a duration (SPEC §2.3: `30s`, `15m`, `2h`, `3d`, `1w`, chained `1h30m`,
 * ISO 8601 `P2D`, `PT90M`; `-` in front when `signed`), or null when it is not one. */
export function durationSeconds(text, { signed = false } = {}) {
  if (typeof text !== "string") return null;
  for (const pattern of [COMPACT, ISO]) {
    const match = pattern.exec(text);
    if (match && match.slice(2).some(Boolean)) {
      if (match[1] && !signed) return null;
      const seconds = match
        .slice(2)
        .reduce((sum, n, i) => sum + (n ? Number(n) * Object.values(UNIT_SECONDS)[i] : 0), 0);
      return match[1] ? -seconds : seconds;
    }
  }
  return null;
}

/** What is wrong with a duration as typed, or null: as the server says it
 * (problems.Checker.duration). A wait, timeout or cooldown is positive; an offset
 * (`signed`) may be zero or negative; `zero` allows zero but not below (the try-out's
 * event times). */
export function durationProblem(text, { signed = false, zero = false, required = true } = {}) {
  if (text === undefined || text === null || text === "") {
    return required ? "a duration is required, e.g. 2d" : null;
  }
  const value = String(text);
  const seconds = durationSeconds(value, { signed: true });
  if (seconds === null) return `invalid duration '${value}' (${durationHint(value)})`;
  if (Math.abs(seconds) > MAX_SECONDS) return `duration '${value}' is too long: at most 3650d (10 years)`;
  if (!signed && (seconds < 0 || (seconds === 0 && !zero))) return "must be a positive duration";
  return null;
}

function durationHint(text) {
  const loose = /^\s*(-?)\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  if (loose && UNIT_BY_WORD[loose[3].toLowerCase()]) {
    const [, sign, number, word] = loose;
    const seconds = Number(number) * UNIT_SECONDS[UNIT_BY_WORD[word.toLowerCase()]];
    if (Number.isInteger(seconds)) return `use ${sign}${formatDuration(seconds)}`;
  }
  if (loose && !loose[3]) {
    const n = loose[1] + loose[2];
    return `add a unit: ${n}s, ${n}m, ${n}h, ${n}d or ${n}w`;
  }
  if (/^-?P[^T]*?\d+[YM]/.test(text)) return "months and years vary in length; use days or weeks";
  return "use e.g. 30s, 15m, 2h, 3d, 1w or ISO 8601 such as P2D";
}

/** The compact form of a number of seconds, as durations.format_duration writes it. */
export function formatDuration(seconds) {
  let rest = Math.abs(Math.trunc(seconds));
  const parts = [];
  for (const unit of ["d", "h", "m", "s"]) {
    const count = Math.floor(rest / UNIT_SECONDS[unit]);
    rest -= count * UNIT_SECONDS[unit];
    if (count) parts.push(`${count}${unit}`);
  }
  return (seconds < 0 ? "-" : "") + (parts.join("") || "0s");
}

const SLUG = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** What is wrong with a step id or a flow key, or null. */
export function slugProblem(text, what = "id") {
  if (SLUG.test(text)) return null;
  return `invalid ${what} '${text}' (use a-z, 0-9, _ and -, starting with a letter or digit, at most 64 characters)`;
}

/** What is wrong with a time of day (`HH:MM`), or null. */
export function timeOfDayProblem(text) {
  return /^([01]?\d|2[0-3]):([0-5]\d)$/.test(text ?? "") ? null : `invalid time of day '${text ?? ""}' (use HH:MM, e.g. 09:30)`;
}

/** What is wrong with an absolute time (ISO 8601 with an offset), or null. */
export function instantProblem(text) {
  const value = text ?? "";
  const shape = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/i;
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    return `a date alone is ambiguous: give a time with an offset, e.g. ${value}T09:00:00Z`;
  }
  if (!shape.test(value) || Number.isNaN(Date.parse(value.replace(" ", "T")))) {
    if (/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(value)) {
      return `time '${value}' has no offset: add one, e.g. Z for UTC or +02:00`;
    }
    return `invalid time '${value}' (use ISO 8601 with an offset, e.g. 2026-12-24T09:00:00Z)`;
  }
  return null;
}

/** What is wrong with an email address as the panels read it (a rough check: the
 * server's `addresses.mailbox` has the last word), or null. A template passes. */
export function addressProblem(text) {
  if (!text || text.includes("{{") || text.includes("{%")) return null;
  const address = /<([^>]*)>\s*$/.exec(text)?.[1] ?? text.trim();
  return /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(address) ? null : `'${text}' is not an email address`;
}

/** What is wrong with a webhook URL as typed, or null (templates pass). */
export function urlProblem(text) {
  if (!text) return "a URL is required";
  if (text.includes("{{") || text.includes("{%")) return null;
  try {
    const url = new URL(text);
    if (url.protocol === "http:" || url.protocol === "https:") return null;
  } catch {
    // not a URL at all: said below
  }
  return "expected an http:// or https:// URL";
}
