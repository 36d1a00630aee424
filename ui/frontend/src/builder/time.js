// Times as the server's pages write them, so that the builder reads like the rest.

/** `2026-12-01 10:17 UTC` for an ISO 8601 instant. */
export function utcMinute(iso) {
  return `${new Date(iso).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}
