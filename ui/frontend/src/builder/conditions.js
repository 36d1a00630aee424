// Conditions (SPEC §2.4) as rows a person can edit, and back to Liquid.
//
// A condition of the common shapes reads as rows, all joined by the same word:
//   visitor.fields.plan == "trial" and visitor.tags contains "vip"
//   → {join: "and", rows: [{subject: "field", name: "plan", operator: "is", value: "trial", type: "text"},
//                          {subject: "tag", name: "", operator: "has", value: "vip", type: "text"}]}
// Subjects: "field" (`visitor.fields.NAME`, or `visitor.NAME` written short: `short: true`),
// "tag" (`visitor.tags contains "x"`), "event" (`event.details.NAME`). Anything else
// (parentheses, mixed and/or, other variables, filters…) does not parse: `parseCondition`
// answers null and the panel offers the Liquid text box instead.
//
// Sluice's own parser (src/sluice/definitions/liquid.py) gives `not` a precedence
// between comparisons and and/or, so `not (a contains "x")` is what we write for
// "does not contain"; `not a contains "x"` parses to the same row.

/** Operators of field and event rows: label, and how each is written. */
export const OPERATORS = {
  is: { label: "is", op: "==" },
  is_not: { label: "is not", op: "!=" },
  contains: { label: "contains", op: "contains" },
  not_contains: { label: "does not contain", op: "contains", negated: true },
  gt: { label: "is more than", op: ">" },
  lt: { label: "is less than", op: "<" },
  ge: { label: "is at least", op: ">=" },
  le: { label: "is at most", op: "<=" },
  exists: { label: "exists", op: "!=", keyword: "nil" },
  missing: { label: "does not exist", op: "==", keyword: "nil" },
  not_empty: { label: "is not empty", op: "!=", keyword: "blank" },
  empty: { label: "is empty", op: "==", keyword: "blank" },
};

/** Operators of tag rows. */
export const TAG_OPERATORS = {
  has: { label: "has the tag" },
  has_not: { label: "does not have the tag" },
};

export const SUBJECTS = {
  field: "Visitor field",
  tag: "Visitor tag",
  event: "Event detail",
};

/** Names `visitor.NAME` means something else than a field (SPEC §2.5). */
const VISITOR_NAMES = new Set(["email", "uuid", "tags", "fields", "subscribed", "created_at"]);

const NAME = /^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*$/;

/** A new row for `subject`. */
export function newRow(subject = "field") {
  return subject === "tag"
    ? { subject, name: "", operator: "has", value: "", type: "text" }
    : { subject, name: "", operator: "is", value: "", type: "text" };
}

/** Whether an operator takes a value. */
export function takesValue(row) {
  return row.subject === "tag" || !OPERATORS[row.operator]?.keyword;
}

// -- tokens ------------------------------------------------------------------------------

const WORDS = new Set(["and", "or", "not", "contains"]);
const KEYWORDS = new Set(["nil", "null", "blank", "empty", "true", "false"]);

/** Tokens of a condition, or null for a text we do not read. */
export function tokenize(text) {
  const tokens = [];
  let i = 0;
  while (i < text.length) {
    const rest = text.slice(i);
    let m;
    if ((m = /^\s+/.exec(rest))) {
      i += m[0].length;
    } else if ((m = /^("([^"]*)"|'([^']*)')/.exec(rest))) {
      tokens.push({ kind: "string", value: m[2] ?? m[3] });
      i += m[0].length;
    } else if ((m = /^-?\d+(\.\d+)?(?![\w.])/.exec(rest))) {
      tokens.push({ kind: "number", value: m[0] });
      i += m[0].length;
    } else if ((m = /^(==|!=|<>|<=|>=|<|>)/.exec(rest))) {
      tokens.push({ kind: "op", value: m[0] === "<>" ? "!=" : m[0] });
      i += m[0].length;
    } else if (rest[0] === "(" || rest[0] === ")") {
      tokens.push({ kind: rest[0] });
      i += 1;
    } else if ((m = /^[A-Za-z_][\w-]*\??/.exec(rest))) {
      const word = m[0];
      i += word.length;
      if (WORDS.has(word)) tokens.push({ kind: word });
      else if (KEYWORDS.has(word)) tokens.push({ kind: "keyword", value: word });
      else {
        const path = readPath(text, i, word);
        if (!path) return null;
        tokens.push({ kind: "path", value: path.segments });
        i = path.end;
      }
    } else {
      return null;
    }
  }
  return tokens;
}

/** The segments of a path that starts with `first`, read from `i` on. */
function readPath(text, i, first) {
  const segments = [first];
  for (;;) {
    const rest = text.slice(i);
    let m;
    if ((m = /^\.([A-Za-z_][\w-]*\??)/.exec(rest))) segments.push(m[1]);
    else if ((m = /^\[\s*("([^"]*)"|'([^']*)')\s*\]/.exec(rest))) segments.push(m[2] ?? m[3]);
    else if (/^[.[]/.test(rest)) return null;
    else return { segments, end: i };
    i += m[0].length;
  }
}

// -- parse ---------------------------------------------------------------------------------

/** Rows of a condition text, `{join, rows}`, or null when it is not of the common shapes. */
export function parseCondition(text) {
  if (typeof text !== "string") return null;
  if (!text.trim()) return { join: "and", rows: [] };
  const tokens = tokenize(text);
  if (!tokens) return null;
  const clauses = [[]];
  let join = null;
  for (const token of tokens) {
    if (token.kind === "and" || token.kind === "or") {
      if (join && join !== token.kind) return null; // mixed: the grouping matters
      join = token.kind;
      clauses.push([]);
    } else clauses[clauses.length - 1].push(token);
  }
  const rows = clauses.map(readClause);
  if (rows.some((row) => row === null)) return null;
  return { join: join ?? "and", rows };
}

function readClause(tokens) {
  let negated = false;
  if (tokens[0]?.kind === "not") {
    negated = true;
    tokens = tokens.slice(1);
    if (tokens[0]?.kind === "(" && tokens[tokens.length - 1]?.kind === ")") {
      tokens = tokens.slice(1, -1);
    }
  }
  if (tokens.length !== 3 || tokens[0].kind !== "path") return null;
  const [path, op, operand] = tokens;
  const subject = subjectOf(path.value);
  if (!subject) return null;
  if (subject.subject === "tags") {
    if (op.kind !== "contains" || operand.kind !== "string") return null;
    return { subject: "tag", name: "", operator: negated ? "has_not" : "has", value: operand.value, type: "text" };
  }
  const opText = op.kind === "contains" ? "contains" : op.kind === "op" ? op.value : null;
  if (!opText) return null;
  let operator;
  let value = "";
  let type = "text";
  if (operand.kind === "keyword" && (operand.value === "nil" || operand.value === "blank")) {
    operator = Object.keys(OPERATORS).find(
      (key) => OPERATORS[key].op === opText && OPERATORS[key].keyword === operand.value,
    );
  } else {
    const literal = literalOf(operand);
    if (!literal) return null;
    ({ value, type } = literal);
    operator = Object.keys(OPERATORS).find(
      (key) => OPERATORS[key].op === opText && !OPERATORS[key].keyword && !!OPERATORS[key].negated === negated,
    );
    if (negated && opText !== "contains") return null;
  }
  if (!operator || (negated && operator !== "not_contains")) return null;
  return { ...subject, operator, value, type };
}

function literalOf(token) {
  if (token.kind === "string") return { value: token.value, type: "text" };
  if (token.kind === "number") return { value: token.value, type: "number" };
  if (token.kind === "keyword" && (token.value === "true" || token.value === "false")) {
    return { value: token.value, type: "boolean" };
  }
  return null;
}

function subjectOf(segments) {
  const [root, second, ...rest] = segments;
  if (root === "visitor" && second === "tags" && rest.length === 0) return { subject: "tags" };
  if (root === "visitor" && second === "fields" && rest.length) {
    return { subject: "field", name: rest.join(".") };
  }
  if (root === "visitor" && second && !VISITOR_NAMES.has(second)) {
    return { subject: "field", name: [second, ...rest].join("."), short: true };
  }
  if (root === "event" && second === "details" && rest.length) {
    return { subject: "event", name: rest.join(".") };
  }
  return null;
}

// -- write ---------------------------------------------------------------------------------

/** Why a row cannot be written, or null when it can. */
export function rowProblem(row) {
  if (row.subject !== "tag" && !row.name.trim()) return "name the field";
  if (row.subject === "tag" && !row.value.trim()) return "name the tag";
  if (!takesValue(row)) return null;
  if (row.type === "number" && !/^-?\d+(\.\d+)?$/.test(row.value.trim())) {
    return `'${row.value}' is not a number`;
  }
  if (row.type === "boolean" && row.value !== "true" && row.value !== "false") {
    return "pick yes or no";
  }
  if (row.type === "text" && row.value.includes('"') && row.value.includes("'")) {
    return "a value with both kinds of quotes cannot be written here: write it as Liquid";
  }
  if (row.type === "text" && row.value.includes("\\")) {
    return "a value with a backslash cannot be written here: write it as Liquid";
  }
  return null;
}

/** The Liquid text of `{join, rows}`; rows with a problem are left out. */
export function writeCondition({ join, rows }) {
  return rows
    .filter((row) => !rowProblem(row))
    .map(writeRow)
    .join(` ${join === "or" ? "or" : "and"} `);
}

function writeRow(row) {
  if (row.subject === "tag") {
    const test = `visitor.tags contains ${quoted(row.value)}`;
    return row.operator === "has_not" ? `not (${test})` : test;
  }
  const path = writePath(row);
  const spec = OPERATORS[row.operator];
  if (spec.keyword) return `${path} ${spec.op} ${spec.keyword}`;
  const operand = row.type === "text" ? quoted(row.value) : row.value.trim();
  const test = `${path} ${spec.op} ${operand}`;
  return spec.negated ? `not (${test})` : test;
}

function writePath(row) {
  const name = row.name.trim();
  // `visitor.NAME` only where it means the field: not for `email`, `tags`…
  const short = row.short && !VISITOR_NAMES.has(name.split(".")[0]);
  const prefix = row.subject === "event" ? "event.details" : short ? "visitor" : "visitor.fields";
  if (NAME.test(name)) return `${prefix}.${name}`;
  return `${prefix}[${quoted(name)}]`;
}

function quoted(text) {
  return text.includes('"') ? `'${text}'` : `"${text}"`;
}
