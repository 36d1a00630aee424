"""The `sluice` command: thin commands over `sluice.service`.

Every command that prints data takes `--json` and then prints exactly one JSON
document. User mistakes end in one line on stderr and exit status 1 (2 for usage).
A command that finds nothing says, on stderr, which database it looked in.

Each command imports what it needs when it runs: the module itself loads only click,
so `sluice --help` is instant and `sluice send` pays for the database and flow
matching but not for the web stack, delivery or migrations (docs/benchmarks.md).
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from sluice.settings import Settings

if TYPE_CHECKING:
    from sluice.definitions.parse import DefinitionError
    from sluice.service import Sluice

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")

EXAMPLES = """

\b
Examples:
  sluice flows apply flows/            # validate and save every definition there
  sluice flows on onboarding
  sluice send '$signup' --email ada@example.com --details '{"plan": "pro"}'
  sluice sessions --email ada@example.com
  sluice serve --port 8000
"""


class UserError(click.ClickException):
    """A mistake of the user's: one line on stderr, exit status 1."""

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def _errors_as_user_errors(command):
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from sluice.service import NoHook, VisitorNotFound
        from sluice.store.flows import UnknownFlow
        from sluice.store.segments import UnknownSegment
        from sluice.store.sessions import InvalidSessionState, SessionNotFound

        try:
            return command(*args, **kwargs)
        except NoHook as error:
            raise UserError(str(error)) from error
        except (UnknownFlow, UnknownSegment, VisitorNotFound, SessionNotFound) as error:
            message = error.args[0] if error.args else error
            raise UserError(f"{message} in {database_label()}") from error
        except InvalidSessionState as error:
            raise UserError(str(error.args[0] if error.args else error)) from error

    return wrapper


class _SluiceGroup(click.Group):
    """The root group: a database that cannot be reached, or fails, ends any command in
    one line naming it (its password hidden) instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as error:
            message = _database_failure(error, ctx.obj)
            if message is None:
                raise
            raise UserError(message) from None


def _database_failure(error: Exception, settings: Settings | None) -> str | None:
    """One line for a SQLAlchemy DBAPIError (OperationalError and the like); None for
    anything else. SQLAlchemy is looked up, not imported: a command that never loaded
    it cannot have failed in it."""
    exc = sys.modules.get("sqlalchemy.exc")
    if settings is None or exc is None or not isinstance(error, exc.DBAPIError):
        return None
    where = _label(settings.database_url)
    # psycopg: 'connection failed: connection to server at "…", port 1 failed: Connection
    # refused\n\tIs the server running…': the reason is after the last "failed: ".
    reason = str(error.orig).strip().splitlines()[0].rsplit("failed: ", 1)[-1].strip()
    reason = reason[:1].lower() + reason[1:]
    if isinstance(error, exc.OperationalError):
        return f"cannot reach the database at {where}: {reason}"
    return f"the database at {where} failed: {reason}"


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def say(text: str) -> None:
    """Print a line of stored text: its control characters (an escape sequence in an
    event's details, say) are shown as `\\u001b` instead of reaching the terminal."""
    click.echo(_CONTROL.sub(lambda c: f"\\u{ord(c[0]):04x}", text))


def emit(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def print_table(columns: Iterable[str], rows: Iterable[Iterable[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for row in rows:
        table.add_row(*row)
    Console().print(table)


@contextmanager
def progress(message: str) -> Iterator[None]:
    """A spinner on stderr, so it never mixes with --json on stdout."""
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield


def database_label() -> str:
    """The database this command uses, as a URL a user can recognise: a SQLite path
    made absolute (`sluice.db` is relative to the working directory), a password hidden."""
    return _label(click.get_current_context().find_root().obj.database_url)


def _label(url: str) -> str:
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        return url if path in ("", ":memory:") else f"sqlite:///{Path(path).resolve()}"
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def nothing_found(what: str, remedy: str = "") -> None:
    """Tell, on stderr, that `what` is missing and where we looked: a newcomer in
    another directory would otherwise wonder where their data went."""
    click.echo(f"{what} in {database_label()}" + (f" ({remedy})" if remedy else ""), err=True)


@click.group(cls=_SluiceGroup, help="Sluice: customer-automation flows you own." + EXAMPLES)
@click.option(
    "--database-url",
    envvar="SLUICE_DATABASE_URL",
    default="sqlite:///sluice.db",
    show_default=True,
    help="A SQLite file path, sqlite:///PATH or postgresql://… (env SLUICE_DATABASE_URL); "
    "give it before the command: sluice --database-url URL flows list.",
)
@click.pass_context
def main(ctx: click.Context, database_url: str) -> None:
    try:
        ctx.obj = Settings.from_env(database_url=database_url)
    except ValueError as error:  # a setting that cannot be used: one line, not a traceback
        raise UserError(str(error)) from None


def open_app(ctx: click.Context) -> Sluice:
    from sluice.service import Sluice
    from sluice.store.db import NewerSchema, retrying

    app = Sluice(ctx.find_root().obj)
    try:
        retrying(app.upgrade)  # a database that is briefly away is waited for
    except NewerSchema as error:
        raise UserError(f"{error} ({database_label()})") from None
    ctx.call_on_close(app.close)
    return app


# -- database ---------------------------------------------------------------------


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx) -> None:
    """Apply schema migrations."""
    open_app(ctx)
    click.echo("database is up to date")


# -- flows ------------------------------------------------------------------------


@main.group()
def flows() -> None:
    """Apply, validate, list and switch flows."""


NO_DEFINITIONS = "no definition in it (it is empty, or holds only comments and ---)"


def read_documents(paths: tuple[str, ...]) -> list[tuple[str, dict]]:
    return read_authored(paths)[0]


def read_authored(paths: tuple[str, ...]) -> tuple[list[tuple[str, dict]], list[str | None]]:
    """The `(name, document)` pairs of the files at `paths`, and each document's own
    text as written (None for JSON), which its version keeps (SPEC §7). DefinitionError
    for a file that cannot be read, and for files that hold no document at all."""
    from sluice.definitions.parse import DefinitionError, load_documents
    from sluice.definitions.problems import Problem
    from sluice.definitions.source import document_texts

    documents, texts, problems = [], [], []
    files = _definition_files(paths)
    for path in files:
        try:
            text = definition_text(path)
            found = load_documents(text, path.name)
            names = (
                [path.name]
                if len(found) == 1
                else [f"{path.name}#{n}" for n in range(1, len(found) + 1)]
            )
            documents += list(zip(names, found, strict=True))
            texts += document_texts(text)
        except DefinitionError as error:
            problems += error.problems
    if not documents and not problems:  # else nothing done would pass for success
        problems = [Problem(path.name, NO_DEFINITIONS) for path in files]
    if problems:
        raise DefinitionError(problems)
    return documents, texts


def definition_text(path: Path) -> str:
    """The text of a definition file or event script, UTF-8: a regular file of at
    most `MAX_TEXT_BYTES`, of which no more than that and one byte is ever read (a
    file that grows while it is read, `/dev/zero` and a FIFO are never read whole)."""
    import stat

    from sluice.definitions.limits import MAX_TEXT_BYTES, text_size_problem
    from sluice.definitions.parse import DefinitionError, Problem

    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO, a device, a socket
            raise DefinitionError([Problem(path.name, "not a regular file")])
        with path.open("rb") as file:
            too_large = text_size_problem(os.fstat(file.fileno()).st_size)
            data = file.read(MAX_TEXT_BYTES + 1) if not too_large else b""
            too_large = too_large or text_size_problem(len(data))
        if too_large:
            raise DefinitionError([Problem(path.name, too_large)])
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        where = f"byte {error.object[error.start]:#04x} at offset {error.start}"
        raise DefinitionError([Problem(path.name, f"not UTF-8 text ({where})")]) from None
    except OSError as error:  # `too many levels of symbolic links` for a loop
        why = (error.strerror or str(error)).lower()
        raise DefinitionError([Problem(path.name, why)]) from None


def _definition_files(paths: tuple[str, ...]) -> list[Path]:
    files = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
        elif path.exists() or path.is_symlink():  # not a regular file: definition_text says
            files.append(path)
        else:
            raise UserError(f"no such file or directory: {raw}")
    if not files:
        raise UserError("no definitions found (looked for .yaml, .yml and .json files)")
    return files


def _report_problems(error: DefinitionError, as_json: bool, *, saves: bool) -> None:
    """Print the problems and exit 1; `saves`: the command would have saved (apply),
    so the last line says that nothing was."""
    if as_json:
        emit([p.as_dict() for p in error.problems])
    else:
        for problem in error.problems:
            click.echo(f"error: {problem}", err=True)
        saved = "; nothing was saved" if saves else ""
        click.echo(f"{len(error.problems)} problem(s){saved}", err=True)
    sys.exit(1)


@flows.command("validate")
@click.argument("paths", nargs=-1, required=True)
@json_option
@click.pass_context
def flows_validate(ctx, paths, as_json) -> None:
    """Validate definitions without saving them."""
    from sluice.definitions.parse import DefinitionError

    app = open_app(ctx)
    try:
        found_flows, found_templates, found_segments = app.validate(read_documents(paths))
    except DefinitionError as error:
        _report_problems(error, as_json, saves=False)
    if as_json:
        emit([])
    else:
        click.echo(
            f"valid: {len(found_flows)} flow(s), {len(found_templates)} template(s), "
            f"{len(found_segments)} segment(s)"
        )


def _note(ctx, param, value: str | None) -> str | None:
    from sluice.edge import note_text

    try:
        return note_text(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@flows.command("apply")
@click.argument("paths", nargs=-1, required=True)
@click.option("--dry-run", is_flag=True, help="Show what would change; save nothing.")
@click.option(
    "--note",
    callback=_note,
    help="A note for the audit log of every flow saved (why the change).",
)
@json_option
@click.pass_context
def flows_apply(ctx, paths, dry_run, note, as_json) -> None:
    """Validate and save definitions (a new version only where something changed).
    Each version keeps its document's text as written, comments included."""
    from sluice import impact
    from sluice.definitions.parse import DefinitionError

    app = open_app(ctx)
    try:
        with progress("validating and saving definitions…"):
            documents, texts = read_authored(paths)
            report = app.apply(documents, texts=texts, note=note, dry_run=dry_run)
    except DefinitionError as error:
        _report_problems(error, as_json, saves=not dry_run)
    if as_json:
        emit({"dry_run": dry_run, **report.as_dict()})
        return
    verb = "would save" if dry_run else "saved"
    kinds = (("template", report.templates), ("segment", report.segments), ("flow", report.flows))
    for kind, changes in kinds:
        for key, version in changes.items():
            state = f"{verb} v{version}" if version else "unchanged"
            click.echo(f"{kind} {key}: {state}")
    for key, places in report.blast_radius.items():
        if report.flows.get(key) is None:
            continue  # unchanged: nobody moves
        for place in places:
            at = f"{key}: {place['sessions']} session(s) at {place['step']}"
            if place["continues_at"] == place["step"]:
                click.echo(f"  {at} stay there")
            else:
                click.echo(f"  {at} → {place['continues_at'] or '(completes)'}")
        lines, warning = impact.sentences(report.impact[key], moves=False)
        for line in lines:
            click.echo(f"  {key}: {line}")
        if warning and dry_run:
            click.echo(f"  {key}: warning: {warning}")


@flows.command("list")
@json_option
@click.pass_context
def flows_list(ctx, as_json) -> None:
    """Every flow with its status and session counts."""
    rows = open_app(ctx).list_flows()
    if not rows:
        nothing_found("no flows", "add some with: sluice flows apply FILE")
    if as_json:
        emit(rows)
        return
    if not rows:
        return
    print_table(
        ("key", "name", "status", "version", "sessions"),
        (
            (
                row["key"],
                row["name"],
                row["status"],
                str(row["version"]),
                ", ".join(f"{k} {v}" for k, v in sorted(row["counts"].items())) or "-",
            )
            for row in rows
        ),
    )


@flows.command("show")
@click.argument("key")
@json_option
@click.pass_context
@_errors_as_user_errors
def flows_show(ctx, key, as_json) -> None:
    """One flow: definition (its text as written), status, versions."""
    flow = open_app(ctx).show_flow(key)
    if as_json:
        emit(flow)
        return
    click.echo(f"{flow['key']} ({flow['name']}): {flow['status']}, version {flow['version']}")
    click.echo(flow["source"])


@flows.command("hook")
@click.argument("key")
@json_option
@click.pass_context
@_errors_as_user_errors
def flows_hook(ctx, key, as_json) -> None:
    """The URL and secret of the inbound hook of a flow whose trigger is webhook: give
    them to the sender (Authorization: Bearer SECRET, or Standard Webhooks signing)."""
    app = open_app(ctx)
    _, secret = app.hook(key)
    hook = {"url": f"{app.settings.public_url.rstrip('/')}/api/hooks/{key}", "secret": secret}
    if as_json:
        emit(hook)
    else:
        click.echo(f"POST {hook['url']}\nsecret: {hook['secret']}")
        click.echo(
            "(the address is SLUICE_PUBLIC_URL's: set it to where senders reach the server)",
            err=True,
        )


def _switch(ctx, key: str, status: str, as_json: bool) -> None:
    from sluice.records import FlowStatus

    flow = open_app(ctx).set_flow_status(key, FlowStatus(status))
    if as_json:
        emit(flow)
    else:
        click.echo(f"{key} is {flow['status']}")


@flows.command("on")
@click.argument("key")
@json_option
@click.pass_context
@_errors_as_user_errors
def flows_on(ctx, key, as_json) -> None:
    """Turn a flow on: new sessions start; paused and stopped sessions resume."""
    _switch(ctx, key, "on", as_json)


@flows.command("off")
@click.argument("key")
@json_option
@click.pass_context
@_errors_as_user_errors
def flows_off(ctx, key, as_json) -> None:
    """Turn a flow off: its sessions pause where they are."""
    _switch(ctx, key, "off", as_json)


@flows.command("stats")
@click.argument("key")
@json_option
@click.pass_context
@_errors_as_user_errors
def flows_stats(ctx, key, as_json) -> None:
    """Per-step counts: sessions there now, entered, and what deliveries did."""
    from sluice.stats import conversion_text

    stats = open_app(ctx).flow_stats(key)
    if as_json:
        emit(stats)
        return
    conversion = conversion_text(stats["converted"], stats["sessions"], stats["has_goals"])
    if conversion != "no goal":
        conversion = f"{stats['converted']} converted, conversion {conversion}"
    click.echo(f"{key} v{stats['version']}: {stats['sessions']} session(s), {conversion}")
    rows = []
    for row in stats["steps"]:
        extra = {k: v for k, v in row.items() if k not in ("step", "kind", "here", "entered")}
        details = ", ".join(f"{k} {v}" for k, v in extra.items())
        rows.append((row["step"], row["kind"], str(row["here"]), str(row["entered"]), details))
    print_table(("step", "kind", "here", "entered", "details"), rows)


@flows.command("changes")
@click.argument("key")
@json_option
@click.pass_context
@_errors_as_user_errors
def flows_changes(ctx, key, as_json) -> None:
    """The audit log of a flow: versions and on/off, with diffs."""
    changes = open_app(ctx).flow_changes(key)
    if as_json:
        emit(changes)
        return
    for change in changes:
        say(f"{change['at']}  {change['actor']}  {change['action']}  v{change['version']}")
        if change["note"]:
            _say_note(change["note"])
        if change["diff"]:
            click.echo(change["diff"])


def _say_note(note: str) -> None:
    """A change's note under its entry, each of its lines indented (so that none reads
    as an entry of its own) and printed by `say`."""
    first, *rest = note.splitlines()
    say(f"  note: {first}")
    for line in rest:
        say(f"        {line}")


# -- events -----------------------------------------------------------------------


def _json_object(value: str | None, name: str) -> dict | None:
    if value is None:
        return None
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise UserError(f"--{name} is not valid JSON: {error}") from error
    if not isinstance(parsed, dict):
        raise UserError(f"--{name} must be a JSON object")
    return parsed


@main.command()
@click.argument("event_type")
@click.option("--email", required=True, help="The visitor's email.")
@click.option("--details", help="JSON object of details.")
@click.option("--fields", help="JSON object of fields to set on the visitor first.")
@json_option
@click.pass_context
def send(ctx, event_type, email, details, fields, as_json) -> None:
    """Send an event for a visitor; prints the sessions it started."""
    from sluice.edge import EventInput, InvalidInput

    try:
        event = EventInput.checked(
            {
                "type": event_type,
                "email": email,
                "details": _json_object(details, "details") or {},
                "fields": _json_object(fields, "fields"),
            },
            source="cli",
        )
    except InvalidInput as error:
        raise UserError(str(error)) from error
    app = open_app(ctx)
    result = app.send([event])
    if as_json:
        emit(
            {
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "sessions_started": result.sessions_started,
            }
        )
    elif result.duplicates:
        click.echo("duplicate event (same idempotency key): ignored")
    else:
        click.echo(f"accepted; {_started(result.sessions_started)}")
    if not result.sessions_started:
        _say_if_no_flow_is_on(app)


def _started(ids: list[int]) -> str:
    """`no sessions started`, `1 session started: 14`, `2 sessions started: 14, 15`."""
    if not ids:
        return "no sessions started"
    noun = "session" if len(ids) == 1 else "sessions"
    return f"{len(ids)} {noun} started: {', '.join(map(str, ids))}"


def _say_if_no_flow_is_on(app: Sluice) -> None:
    from sluice.records import FlowStatus
    from sluice.store.flows import list_flows

    with app.db.read() as conn:
        found = list_flows(conn)
    if not found:
        nothing_found("no flows", "add some with: sluice flows apply FILE")
    elif all(flow.status != FlowStatus.ON for flow in found):
        nothing_found("no flow is on", "turn one on with: sluice flows on KEY")


# -- sessions ---------------------------------------------------------------------


@main.group(invoke_without_command=True)
@click.option("--email")
@click.option("--flow")
@click.option(
    "--status",
    type=click.Choice(["active", "waiting", "stopped", "completed", "exited", "failed"]),
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@json_option
@click.pass_context
def sessions(ctx, email, flow, status, limit, as_json) -> None:
    """List sessions, newest first; or act on one (show, stop, resume, retry)."""
    if ctx.invoked_subcommand:
        return
    rows = open_app(ctx).sessions(email=email, flow=flow, status=status, limit=limit)
    if not rows:
        filtered = email or flow or status
        nothing_found("no matching sessions" if filtered else "no sessions")
    if as_json:
        emit(rows)
        return
    if not rows:
        return
    print_table(
        ("id", "flow", "email", "status", "step", "started"),
        (
            (
                str(row["id"]),
                row["flow"],
                row["email"] or "-",
                row["status"] + (" (paused)" if row["paused"] else ""),
                row["step"] or "-",
                row["started_at"],
            )
            for row in rows
        ),
    )


def print_session(app: Sluice | None, session: dict) -> None:
    """The session, then its timeline in the UI's sentences, one line per row, time
    first (docs/sessions.md); `app` None for a simulated session."""
    from sluice import narration

    paused = " (paused: flow is off)" if session["paused"] else ""
    say(
        f"session {session['id']}: {session['flow']} v{session['flow_version']} "
        f"for {session['email']}: {session['status']}{paused} at {session['step'] or '-'}"
    )
    # The view's entries carry no ids: their order is all the sentences need.
    entries = list(enumerate(session["timeline"], 1))
    if app is None:
        lines = narration.session_lines(None, session, entries, None)
    else:
        with app.db.read() as conn:
            lines = narration.session_lines(conn, session, entries, app.clock.now())
    for line in lines:
        say(f"  {line.text()}")


def _session_command(name: str, action: str, help_text: str):
    @sessions.command(name, help=help_text)
    @click.argument("session_id", type=int)
    @json_option
    @click.pass_context
    @_errors_as_user_errors
    def command(ctx, session_id, as_json) -> None:
        app = open_app(ctx)
        session = getattr(app, action)(session_id)
        if as_json:
            emit(session)
        else:
            print_session(app, session)

    return command


_session_command("show", "session", "One session with its timeline.")
_session_command("stop", "stop_session", "Stop a session for this visitor.")
_session_command("resume", "resume_session", "Resume a stopped session.")
_session_command("retry", "retry_session", "Re-run the step at which a failed session failed.")


# -- visitors ---------------------------------------------------------------------


@main.group()
def visitors() -> None:
    """Visitor profiles, GDPR export and erasure."""


@visitors.command("show")
@click.argument("email")
@json_option
@click.pass_context
@_errors_as_user_errors
def visitors_show(ctx, email, as_json) -> None:
    """A visitor's profile: fields, tags, subscription, sessions, recent events."""
    from sluice.addresses import AddressError, visitor_email

    try:
        visitor_email(email)
    except AddressError as error:
        raise UserError(str(error)) from None
    profile = open_app(ctx).visitor(email)
    if as_json:
        emit(profile)
        return
    subscribed = "subscribed" if profile["subscribed"] else "unsubscribed"
    click.echo(f"{profile['email']} ({profile['uuid']}), {subscribed}")
    click.echo(f"  tags: {', '.join(profile['tags']) or '-'}")
    click.echo(f"  fields: {orjson.dumps(profile['fields']).decode()}")
    for s in profile["sessions"]:
        paused = " (paused)" if s["paused"] else ""
        click.echo(f"  session {s['id']}: {s['flow']} {s['status']}{paused} at {s['step'] or '-'}")
    for e in profile["events"][:10]:
        click.echo(f"  event {e['date']} {e['type']}")


@visitors.command("explain")
@click.argument("email")
@click.option("--flow", "flow", required=True, help="The flow's key.")
@click.option("--step", default=None, help="One step of the flow (an email's id).")
@json_option
@click.pass_context
@_errors_as_user_errors
def visitors_explain(ctx, email, flow, step, as_json) -> None:
    """Why a visitor got a flow (or one step of it), or why not.

    \b
    Example:
      sluice visitors explain ada@example.com --flow onboarding --step welcome
    """
    from sluice.explain import UnknownStep

    try:
        explanation = open_app(ctx).explain(email, flow, step)
    except UnknownStep as error:
        raise UserError(str(error)) from None
    if as_json:
        emit(explanation.as_dict())
        return
    # The sentence marks code (a rule, a condition) with backticks for the web page.
    say(f"{explanation.verdict}: {explanation.sentence.replace('`', '')}")
    for link in explanation.links:
        click.echo(f"  {link.label}: sluice sessions show {link.href.rsplit('/', 1)[-1]}")


@visitors.command("export")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (always).")
@click.pass_context
@_errors_as_user_errors
def visitors_export(ctx, email, as_json) -> None:
    """Everything stored about a visitor, as JSON."""
    with progress(f"exporting {email}…"):
        export = open_app(ctx).export_visitor(email)
    emit(export)


@visitors.command("erase")
@click.argument("email")
@json_option
@click.pass_context
@_errors_as_user_errors
def visitors_erase(ctx, email, as_json) -> None:
    """Erase a visitor; only a hash of the address stays, so it is never emailed again."""
    result = open_app(ctx).erase_visitor(email)
    if as_json:
        emit(result)
    else:
        click.echo(f"erased {email}; {result['sessions_exited']} unfinished session(s) exited")


# -- credentials ------------------------------------------------------------------


@main.group()
def keys() -> None:
    """The API credentials (Bento-compatible and native API)."""


@keys.command("show")
@json_option
@click.pass_context
def keys_show(ctx, as_json) -> None:
    """Print the site uuid and the publishable key (the secret key is stored hashed)."""
    app = open_app(ctx)
    data = {key: app.secret(key) for key in ("site_uuid", "publishable_key")}
    if as_json:
        emit(data)
    else:
        click.echo(f"site uuid:       {data['site_uuid']}")
        click.echo(f"publishable key: {data['publishable_key']}")


@keys.command("rotate")
@json_option
@click.pass_context
def keys_rotate(ctx, as_json) -> None:
    """Replace the secret key; the old one stops working. Prints the new one once."""
    from sluice.credentials import ReadOnlySetting

    try:
        secret = open_app(ctx).credentials.rotate_secret_key()
    except ReadOnlySetting as error:
        raise UserError(str(error)) from error
    if as_json:
        emit({"secret_key": secret})
    else:
        click.echo(f"new secret key (shown only now): {secret}")


@main.group()
def segments() -> None:
    """Segments: named groups of visitors, kept up to date as they change. Save them
    with `sluice flows apply` (documents with kind: segment)."""


@segments.command("list")
@json_option
@click.pass_context
def segments_list(ctx, as_json) -> None:
    """Every segment with how many visitors are in it."""
    rows = open_app(ctx).segments()
    if not rows:
        nothing_found("no segments", "add some with: sluice flows apply FILE")
    if as_json:
        emit(rows)
    elif rows:
        print_table(
            ("key", "name", "members", "version"),
            ((r["key"], r["name"], str(r["members"]), str(r["version"])) for r in rows),
        )


@segments.command("show")
@click.argument("key")
@json_option
@click.pass_context
@_errors_as_user_errors
def segments_show(ctx, key, as_json) -> None:
    """One segment: its rules (as written), member count and changes."""
    segment = open_app(ctx).segment(key)
    if as_json:
        emit(segment)
        return
    say(
        f"{segment['key']} ({segment['name']}): {segment['members']} member(s), "
        f"version {segment['version']}"
    )
    click.echo(segment["source"].rstrip("\n"))  # the author's own text, lines and all
    click.echo("\nchanges:")
    for change in segment["changes"]:
        note = f": {change['note']}" if change["note"] else ""
        say(f"  v{change['version']} {change['at']} by {change['actor']}{note}")


@segments.command("members")
@click.argument("key")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option(
    "--after", type=click.IntRange(0), default=None, help="The last id of the page before."
)
@json_option
@click.pass_context
@_errors_as_user_errors
def segments_members(ctx, key, limit, after, as_json) -> None:
    """A page of the segment's members, by visitor id."""
    rows = open_app(ctx).segment_members(key, limit=limit, after_id=after)
    if as_json:
        emit(rows)
        return
    if not rows:
        click.echo(f"no members of {key} here", err=True)
        return
    print_table(
        ("id", "email", "entered"), ((str(r["id"]), r["email"], r["entered_at"]) for r in rows)
    )
    if len(rows) == limit:
        click.echo(f"next page: sluice segments members {key} --after {rows[-1]['id']}", err=True)


@main.group()
def admin() -> None:
    """The web UI's admin user."""


@admin.command("set-password")
@click.password_option(
    "--password",
    envvar=None,
    help="The new password (asked for, twice, when not given).",
)
@click.pass_context
def admin_set_password(ctx, password) -> None:
    """Set the password of the `admin` user of the web UI."""
    from sluice.credentials import ReadOnlySetting

    if len(password) < 8:
        raise UserError("the password needs at least 8 characters")
    try:
        open_app(ctx).credentials.set_admin_password(password)
    except ReadOnlySetting as error:
        raise UserError(str(error)) from error
    click.echo("admin password changed")


# -- delivery ---------------------------------------------------------------------


@main.command("webhook-secret")
@json_option
@click.pass_context
def webhook_secret(ctx, as_json) -> None:
    """Print the secret that signs webhooks (give it to the receivers to verify them)."""
    secret = open_app(ctx).webhook_secret()
    if as_json:
        emit({"webhook_secret": secret})
    else:
        click.echo(secret)


# -- simulation, workers, server ------------------------------------------------------


@main.command()
@click.argument("path")
@click.option(
    "--events",
    "script_path",
    required=True,
    metavar="FILE",
    help="The event script: a YAML or JSON file.",
)
@json_option
@click.pass_context
def simulate(ctx, path, script_path, as_json) -> None:
    """Run a flow against a scripted visitor on a virtual clock; nothing is stored or sent.

    PATH is a definition file or a directory of them (.yaml, .yml, .json). Templates
    and flows they refer to come from those files, else from the database, which is
    only read (and not created when it does not exist).

    The simulation starts at the script's first absolute `at`, or now when there is
    none; every `+offset` counts from that start."""
    from sluice.definitions.parse import DefinitionError
    from sluice.simulate import ScriptError, simulate_flow

    try:
        documents = read_documents((path,))
        script = _script(script_path)
        stored = _stored_for_simulation(ctx)
        with progress("simulating on a virtual clock…"):
            result = simulate_flow(documents, script, stored=stored)
    except DefinitionError as error:
        _report_problems(_with_simulation_hints(error), as_json, saves=False)
    except (ScriptError, FileNotFoundError) as error:
        raise UserError(str(error)) from error
    if as_json:
        emit(result)
        return
    for session in result["sessions"]:
        print_session(None, session)


def _stored_for_simulation(ctx) -> Sluice | None:
    """The database, opened read-only, for the templates and flows a simulation may
    refer to; None when it is a SQLite file that does not exist (nothing is created)."""
    from sluice.service import Sluice
    from sluice.store.db import head_revision, sqlite_path

    settings = ctx.find_root().obj
    url = settings.database_url
    path = sqlite_path(url) if url.startswith("sqlite") else None
    if path is not None and not Path(path).is_file():
        return None
    app = Sluice(settings, read_only=True)
    ctx.call_on_close(app.close)
    revision = app.db.schema_revision()
    if revision is None:
        return None  # an empty database: nothing stored yet
    if revision != head_revision():
        raise UserError(
            f"the database {database_label()} is at schema revision {revision}, not "
            f"{head_revision()}: run `sluice db upgrade` first"
        )
    return app


def _script(path: str) -> Any:
    """The first document of the script file at `path`; DefinitionError when it has none."""
    from sluice.definitions.parse import DefinitionError, Problem, load_documents

    found = load_documents(definition_text(Path(path)), path)
    if not found:
        raise DefinitionError(
            [Problem(path, "no script in it (it is empty, or holds only comments and ---)")]
        )
    return found[0]


def _with_simulation_hints(error: DefinitionError) -> DefinitionError:
    """An unknown template in a simulation: say how to give it."""
    from sluice.definitions.parse import DefinitionError, Problem

    hint = " (give its file too, e.g. sluice simulate DIR, or apply it first)"
    return DefinitionError(
        [
            Problem(p.loc, p.msg + hint) if p.msg.startswith("unknown template ") else p
            for p in error.problems
        ]
    )


@main.command()
@click.option(
    "--concurrency",
    default=10,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Sizes the work in hand: 10 × N sessions per batch, 50 × N deliveries in flight.",
)
@click.option(
    "--lease",
    type=click.FloatRange(1, 3600),
    envvar="SLUICE_LEASE_SECONDS",
    help="Seconds a claim lasts before another worker may take it over (default 60).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve Prometheus metrics on this port (env SLUICE_METRICS_PORT).",
)
@click.pass_context
def worker(ctx, concurrency, lease, metrics_port) -> None:
    """Run a worker only (scale-out: many of them against one PostgreSQL)."""
    from sluice.processes import CannotListen, listen, run_worker

    if lease is not None:
        ctx.find_root().obj = replace(ctx.find_root().obj, lease_seconds=lease)
    metrics_port = metrics_port or ctx.find_root().obj.metrics_port
    metrics_socket = None
    if metrics_port:
        try:  # first: a port in use is told before anything starts
            metrics_socket = listen(
                "0.0.0.0", metrics_port, flag="--metrics-port", what="metrics port"
            )
        except CannotListen as error:
            raise UserError(str(error)) from None
    run_worker(open_app(ctx), concurrency=concurrency, metrics_socket=metrics_socket)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--no-worker", is_flag=True, help="Serve HTTP only; workers run elsewhere.")
@click.pass_context
def serve(ctx, host, port, no_worker) -> None:
    """Run the HTTP server with an embedded worker.

    Links in the emails this process sends point at this host and port unless
    SLUICE_PUBLIC_URL is set."""
    from sluice.processes import CannotListen, listen, listening_url, run_server
    from sluice.settings import env_name

    try:
        sock = listen(host, port)  # first: a port in use is told before anything starts
    except CannotListen as error:
        raise UserError(str(error)) from None
    if not os.environ.get(env_name("public_url")):
        root = ctx.find_root()
        root.obj = replace(root.obj, public_url=listening_url(sock))
    run_server(open_app(ctx), sock=sock, with_worker=not no_worker)
